"""CPU accounting from /proc: how busy the machine is, the CPU time of one process, waiting for a
quiet machine before a scenario, and the CPU used by every other process during one.
"""

from __future__ import annotations

import os
import resource
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int, int]:
    """(user+nice+system, all non-idle, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    procs = user + nice + system
    return procs, procs + irq + softirq + steal, sum(fields)


def process_jiffies(pid: int) -> int:
    """utime+stime of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def machine_busy_pct(seconds: float = 1.0) -> float:
    """Share of all CPUs that is not idle over `seconds`, in percent."""
    _, busy0, total0 = machine_jiffies()
    time.sleep(seconds)
    _, busy1, total1 = machine_jiffies()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(max_busy_pct: float, max_wait_s: float) -> float:
    """Wait until the machine is quiet (before starting a server); returns the last busy share."""
    deadline = time.monotonic() + max_wait_s
    busy = machine_busy_pct()
    warned = False
    while busy > max_busy_pct and time.monotonic() < deadline:
        if not warned:
            print(
                f"  the machine is busy ({busy:.0f}% of all CPUs used by other processes); "
                f"waiting up to {max_wait_s:.0f} s for it to drop below {max_busy_pct:.0f}% ...",
                file=sys.stderr,
                flush=True,
            )
            warned = True
        time.sleep(2)
        busy = machine_busy_pct()
    if busy > max_busy_pct:
        print(f"  still busy ({busy:.0f}%): running anyway, see the notes column", file=sys.stderr)
    return busy


class OtherCpu:
    """CPU time of every process except the ones we know about, over a window."""

    def __init__(self, known_pids: list[int]) -> None:
        self.known_pids = known_pids
        self.t0 = time.monotonic()
        self.machine0 = machine_jiffies()[0]
        self.known0 = sum(process_jiffies(pid) for pid in known_pids)
        self.children0 = _children_jiffies()

    def pct(self) -> float:
        """% of one core used by the others since the start (wireload counts once it is reaped)."""
        elapsed = time.monotonic() - self.t0
        machine = machine_jiffies()[0] - self.machine0
        known = sum(process_jiffies(pid) for pid in self.known_pids) - self.known0
        children = _children_jiffies() - self.children0
        other = machine - known - children
        return max(0.0, 100.0 * other / CLK_TCK / max(elapsed, 1e-3))


def _children_jiffies() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * CLK_TCK
