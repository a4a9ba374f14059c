"""Is a process still there? (A zombie is not: it has exited and only waits to be reaped.)"""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.02) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails after ``timeout``."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)  # polling with a deadline, not synchronising
    return time.monotonic() - began
