import sys

__version__ = "0.1.0"

# httpx's package imports its command-line tool, ``httpx._main``, whenever click, pygments and
# rich are installed (apprise brings click, the dev tools the other two): 57 ms of every
# command's start-up and 8 MB of the idle worker's RSS, for a tool the rotator never runs.
# A None entry in sys.modules makes that import fail as it does when they are missing (the
# import system's documented rule), and httpx then defines a stub ``main`` instead.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
