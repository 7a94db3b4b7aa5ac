"""Where the samples of a py-spy raw (collapsed) profile went, by library and by our own module.

Run from the repo root:  python -m bench.stacks FILE [FILE ...] [--top 25]

``py-spy record -f raw`` writes one line per distinct stack: ``frame;frame;...;frame count``
(root first). Each stack is charged to the library our innermost frame (``service/...``)
called, so "sqlalchemy" holds psycopg's time spent for SQLAlchemy as well ("ours" when our
frame is the leaf or calls only the interpreter). A second table charges each stack to
that innermost frame of ours, to see which of our functions the time is spent under.
bench/once.py --profile writes such files.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

LIBRARIES = (
    ("sqlalchemy", "sqlalchemy"),
    ("psycopg", "psycopg"),
    ("httpx", "httpx/httpcore"),
    ("httpcore", "httpx/httpcore"),
    ("h11", "httpx/httpcore"),
    ("hvac", "hvac/requests"),
    ("requests", "hvac/requests"),
    ("urllib3", "hvac/requests"),
    ("structlog", "logging"),
    ("logging", "logging"),
    ("json", "json"),
    ("prometheus_client", "prometheus"),
    ("pydantic", "pydantic"),
    ("apscheduler", "apscheduler"),
    ("threading", "threading"),
    ("concurrent", "threading"),
    ("queue", "threading"),
    ("ssl", "ssl"),
    ("socket", "socket"),
    ("selectors", "socket"),
    ("alembic", "alembic"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def parse(lines: Iterable[str]) -> Iterable[tuple[list[tuple[str, str]], int]]:
    """(frames root first as (function, file), samples) per line."""
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            frames.append((match["func"], match["file"]) if match else (frame, ""))
        yield frames, int(count)


def library_of(path: str) -> str | None:
    """The library a frame's file belongs to (py-spy names files from their sys.path entry)."""
    if ours(path):
        return None
    parts = Path(path).parts
    if "site-packages" in parts:  # full paths, when py-spy could not shorten them
        parts = parts[parts.index("site-packages") + 1 :]
    top = parts[0].removesuffix(".py") if parts else ""
    if not top:
        return None
    for prefix, name in LIBRARIES:
        if top.startswith(prefix):
            return name
    return "other library"


def ours(path: str) -> str | None:
    if path.startswith("service/"):
        return path
    marker = path.find("/service/")
    return path[marker + 1 :] if marker >= 0 else None


def summarise(paths: list[Path]) -> tuple[int, Counter[str], Counter[str]]:
    total, by_library, by_ours = 0, Counter[str](), Counter[str]()
    for path in paths:
        for frames, count in parse(path.read_text().splitlines()):
            total += count
            positions = [at for at, (_, file) in enumerate(frames) if ours(file)]
            if not positions:
                by_library["(no frame of ours)"] += count
                by_ours["(outside service/)"] += count
                continue
            func, file = frames[positions[-1]]
            callee = frames[positions[-1] + 1][1] if positions[-1] + 1 < len(frames) else ""
            by_library[library_of(callee) or "ours"] += count
            by_ours[f"{func} ({ours(file)})"] += count
    return total, by_library, by_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, by_library, by_ours = summarise(args.files)
    print(f"{total} samples\n\nthe library our innermost frame called:")
    for name, count in by_library.most_common():
        print(f"  {100 * count / max(total, 1):5.1f}%  {name}")
    print("\ninnermost frame of ours:")
    for name, count in by_ours.most_common(args.top):
        print(f"  {100 * count / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()
