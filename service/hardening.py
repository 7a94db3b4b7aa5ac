"""Process hardening applied before any command runs (stdlib only; POSIX).

A core dump of this process would hold whatever credentials were in memory at the crash:
the Vault token, XSUAA client secrets, registry passwords. ``disable_core_dumps`` sets the
soft ``RLIMIT_CORE`` to 0, the limit the kernel applies when it writes a core file, and
processes started from here inherit it. The hard limit is left as it was: nothing in the
rotator raises the soft limit again, and lowering the hard one is irreversible for the
whole process (a test that runs commands in-process could then never see a change).
"""

from __future__ import annotations

import resource


def disable_core_dumps() -> bool:
    """Set the soft RLIMIT_CORE to 0; False when the platform refuses (the process keeps running)."""
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    except (ValueError, OSError):  # a sandbox that forbids it: better to run than to stop
        return False
    return True
