"""CPU and memory of another process from /proc (Linux), so a benchmark measures the server, not itself."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


@dataclass
class CpuWindow:
    """CPU used by `pid` between start() and stop(), as a fraction of one core."""

    pid: int
    _cpu0: float = 0.0
    _t0: float = 0.0
    cores: float = 0.0
    seconds: float = 0.0

    def start(self) -> None:
        self._cpu0, self._t0 = cpu_seconds(self.pid), time.monotonic()

    def stop(self) -> float:
        self.seconds = time.monotonic() - self._t0
        self.cores = (cpu_seconds(self.pid) - self._cpu0) / self.seconds if self.seconds > 0 else 0.0
        return self.cores


def peak_rss_bytes(pid: int) -> int:
    """The process's peak RSS (VmHWM) since start or since the last reset through /proc/<pid>/clear_refs."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0
