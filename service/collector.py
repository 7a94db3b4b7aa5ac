"""The memory settings of a process that sweeps thousands of pairs: the collector, malloc (stdlib only).

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

And one for glibc's malloc, which serves what pymalloc does not (objects over 512 bytes, C
libraries): by default each thread that allocates may get an arena of its own, up to 8 per
core, and each keeps the memory freed in it. ``tune`` caps them at ``MALLOC_ARENAS``, as
``MALLOC_ARENA_MAX=2`` in a container's environment would (an operator's own setting of it
stands): the idle worker's RSS was 2-3 MB lower with it (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import gc
import os
from typing import Any

YOUNG_THRESHOLD = 10_000  # new containers between young collections (CPython's default: 700)
MALLOC_ARENAS = 2  # glibc's arenas for all threads (its default: up to 8 per core)
_M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h


def tune() -> None:
    """Collect the young generation less often (the older generations keep their thresholds); cap malloc's arenas."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    cap_malloc_arenas(MALLOC_ARENAS)


def cap_malloc_arenas(count: int) -> bool:
    """At most ``count`` glibc malloc arenas from now on; False without glibc, or if the environment set it.

    Call it before threads start: an arena a thread already has stays.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, count))


def _glibc(name: str) -> Any:
    """A function of this process's C library if it is glibc's, else None (macOS, or no C library to load)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


TRIM_AFTER_ROTATIONS = 200  # a sweep this big leaves megabytes free inside malloc's heap


def trim() -> bool:
    """Hand the free pages inside glibc's heap back to the system (``malloc_trim(0)``); False without glibc.

    A sweep of thousands of rotations allocates and frees tens of megabytes; glibc keeps freed
    chunks between live ones, so a worker's RSS after its first full sweep stayed about 9 MB
    above what it holds (124.6 -> 115.5 MB with 5,000 pairs, docs/performance.md).
    """
    malloc_trim = _glibc("malloc_trim")
    return malloc_trim is not None and bool(malloc_trim(0))


def after_sweep(rotations: int) -> bool:
    """Trim after a sweep of at least ``TRIM_AFTER_ROTATIONS`` (a scheduled tick of a few pairs costs nothing)."""
    return rotations >= TRIM_AFTER_ROTATIONS and trim()


def settle() -> None:
    """Collect once, then leave everything alive now out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
