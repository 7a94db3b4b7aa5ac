"""The garbage collector's settings for a process that sweeps thousands of pairs (stdlib only).

A sweep allocates hundreds of containers per rotation (results, states, audit rows, log
events), so with CPython's default threshold (a young collection every 700 new containers)
the collector ran about once per rotation, and each older collection walked the whole
heap: the configuration, its specs and every module, none of which ever becomes garbage.
perf on ``rotator once`` over 5,000 unchanged secrets put 7-8% of the process's CPU in
``gc_collect_main`` and its visitors (docs/performance.md). Two changes, both from the
``gc`` module's documentation:

- ``tune``: a young collection after 10,000 new containers (the older generations keep
  their defaults), for every command, from the start;
- ``settle``: once start-up is done, what exists then lives as long as the process (modules,
  the configuration, the app): ``gc.freeze`` moves it out of every later collection. After a
  reload ``settle`` runs again, unfreezing first, so a replaced configuration is collected.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # new containers between young collections (CPython's default: 700)


def tune() -> None:
    """Collect the young generation less often; the older generations keep their thresholds."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def settle() -> None:
    """Collect once, then leave everything alive now out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
