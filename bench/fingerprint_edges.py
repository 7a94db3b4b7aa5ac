"""CPU of the fingerprint's conversions on one rotation's path, in this process, before and after.

Run from the repo root:  python -m bench.fingerprint_edges [--pairs 5000] [--rounds 7] [--before DIR]

It times (``time.thread_time``, the median of --rounds rounds over --pairs pairs) the code that
carries a fingerprint on the path of one rotation, with nothing else around it:
- *load*: a ``rotation_state`` row (as PostgreSQL returns it, the fingerprint as text, each
  pair its own) into a ``RotationState`` (``service.audit.state._state_from_row``); the rounds
  load the same rows again, as sweep after sweep does;
- *decide*: ``rotation.decide_rendering`` of a rendering against that state;
- *save*: the state back into its row (``_state_row``);
- *audit*: an intent and its outcome hashed into the chain (``audit.chain.chain``);
- *log*: the fingerprint fields of the canonical line, as ``service.observe`` passes them.
A written rotation is load + decide + audit + log + save; an unchanged one skips audit.
--before DIR points a child run at another checkout (e.g. ``git archive`` of main), where
fingerprints are text; the rows alternate before/after so the machine's noise hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("load", "decide", "save", "audit", "log")


def measure(pairs: int, rounds: int) -> dict[str, float]:
    """Microseconds per pair of each phase in the importable ``service`` (median of ``rounds``)."""
    from service.audit.chain import GENESIS, chain
    from service.audit.state import _state_from_row, _state_row
    from service.dockerconfig import fingerprint
    from service.model import AuditEvent, ChainHead, DockerConfigJson, EventType, Fingerprint, Trigger
    from service.rotation import AuditKeys, decide_rendering

    typed = hasattr(Fingerprint, "read")  # after: state and events hold a Fingerprint
    config = DockerConfigJson('{"auths":{"r.example":{"auth":"dTpw","password":"p","username":"u"}}}')
    keys = AuditKeys("k1", b"k" * 32, {"k0": b"o" * 32})
    new = fingerprint(config, key=keys.key, key_id=keys.key_id)
    text = str(new)
    rows = [(f"t{i}", f"s{i}", *_blank_row(text if i == 0 else f"hmac-sha256:k1:{i:064x}")) for i in range(pairs)]
    states = [_state_from_row(row) for row in rows]
    value: Any = new if typed else text
    event = AuditEvent(
        event=EventType.INTENT,
        run_id="r",
        target="t",
        api_host="h",
        secret="s",
        registries=("r.example",),
        trigger=Trigger.SCHEDULE,
        actor="a",
        fingerprint=value,
        previous_fingerprint=value,
    )
    head, at = ChainHead(0, GENESIS), datetime(2026, 1, 1, tzinfo=UTC)
    log: Callable[[Any], Any] = (lambda fp: None if fp is None else str(fp)) if typed else (lambda fp: fp)
    work: dict[str, Callable[[], object]] = {
        "load": lambda: [_state_from_row(row) for row in rows],
        "decide": lambda: [decide_rendering(s, config, keys=keys, identity="i", force=False) for s in states],
        "save": lambda: [_state_row(s) for s in states],
        "audit": lambda: [chain([event, event], head=head, recorded_at=at) for _ in range(pairs)],
        "log": lambda: [(log(value), log(value)) for _ in range(pairs)],
    }
    result = {}
    for phase in PHASES:
        times = []
        for _ in range(rounds):
            started = time.thread_time()
            work[phase]()
            times.append((time.thread_time() - started) / pairs * 1e6)
        result[phase] = statistics.median(times)
    return result


def _blank_row(text: str) -> list[object]:
    """The state columns after (target, secret), in ``_STATE_FIELDS`` order: a fingerprint, the rest empty."""
    from service.audit.state import _STATE_FIELDS

    return [
        text if name == "fingerprint" else (0 if name == "consecutive_failures" else None) for name in _STATE_FIELDS
    ]


def child(src: Path, pairs: int, rounds: int) -> dict[str, float]:
    """``measure`` in a child process (this file run as a script) that imports ``service`` from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--measure", str(pairs), str(rounds)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=src)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", type=Path, help="a checkout whose fingerprints are text (e.g. git archive of main)")
    parser.add_argument("--alternations", type=int, default=3, help="before/after runs, alternating")
    args = parser.parse_args()
    sides = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.alternations):
        for side, src in sides.items():
            runs[side].append(child(src, args.pairs, args.rounds))
    shape = f"median of {args.alternations} runs of {args.rounds} rounds; {args.pairs} pairs"
    print(f"µs of CPU per pair (thread time; {shape})")
    print(f"{'phase':<10}" + "".join(f"{side:>10}" for side in sides))
    totals: dict[str, dict[str, float]] = {side: {} for side in sides}
    for phase in PHASES:
        cells = []
        for side in sides:
            median = statistics.median(run[phase] for run in runs[side])
            totals[side][phase] = median
            cells.append(f"{median:>10.2f}")
        print(f"{phase:<10}" + "".join(cells))
    for label, phases in (("written", PHASES), ("unchanged", ("load", "decide", "save", "log"))):
        print(f"{label:<10}" + "".join(f"{sum(totals[side][p] for p in phases):>10.2f}" for side in sides))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
