"""Child processes that end with the process that started them (Linux)."""

from __future__ import annotations

import os
import signal


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel for `sig` when our parent dies (PR_SET_PDEATHSIG), then exit at once if the
    starting process (`parent`, the pid it passed us) already died while we were starting: the
    kernel only signals deaths that happen after the request."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's pipes closing still end us
        pass
    if parent_gone(parent):
        os._exit(1)


def parent_gone(parent: int) -> bool:
    """Whether process `parent` has died. Not being its child any more means it died (we were
    reparented), unless it never was our parent (a forkserver started us); a killed process stays
    in the table as a zombie until it is reaped, so a zombie counts as dead."""
    if os.getppid() == parent:
        return False
    try:
        with open(f"/proc/{parent}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    return state in ("Z", "X", "x")
