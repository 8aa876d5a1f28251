"""Process identity that survives pid reuse: a pid plus its start time (field 22 of /proc/<pid>/stat)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has finished: it only waits to be reaped
        return None
    return int(fields[19])


def identity_line(pid: int) -> str:
    """`<pid> <start time>`, the content of a pid file."""
    return f"{pid} {start_time(pid)}\n"


def read_identity(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError, ValueError):
        pid, started = path.read_text().split()
        return int(pid), int(started)
    return None


def is_alive(identity: tuple[int, int] | None) -> bool:
    """True when the process of a pid file still runs (and is the same process, not a reused pid)."""
    return identity is not None and start_time(identity[0]) == identity[1]


def signal_process(identity: tuple[int, int] | None, signal_number: int = signal.SIGTERM) -> bool:
    """Signal the process of a pid file if it is still that process; True when the signal was sent."""
    if not is_alive(identity):
        return False
    assert identity is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(identity[0], signal_number)
        return True
    return False
