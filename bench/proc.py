"""What a process costs, read from /proc: peak RSS since a reset, and CPU time."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> int:
    """Resets the kernel's peak RSS (VmHWM) of `pid` to its RSS now; returns that, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return kib(pid, "VmRSS")


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    return sum(cpu_split(pids))


def cpu_split(pids: Iterable[int]) -> tuple[float, float]:
    """User and system CPU time the processes have used so far, apart."""
    user = system = 0
    for pid in pids:
        # Fields after the command name (which may hold spaces): utime and stime are 14, 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS
