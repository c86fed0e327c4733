"""How much of the CPU the host gave this process over a short window: the context of a p99.

On a shared machine a benchmark's tail is often the host's, not the code's: a process that is not
running while a call is timed adds that pause to the call. A busy loop that only reads the
monotonic clock sees such pauses directly, as steps between two reads far longer than one loop
iteration (~0.1 us): time taken by another process, the kernel or, in a virtual machine, the
hypervisor (which the guest's own CPU accounting does not always show). ``rtdrive bench`` probes
before and after each benchmark and reports the share lost and the longest pause beside the p99.
It sees pauses only, not a CPU that runs slower (a lower clock, a neighbour in the same cache):
for that, compare same-run ratios (``median_vs_...``), as the README says.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

# A step between two clock reads longer than this is a pause, not the loop: a Python iteration
# takes ~0.1 us, and an interrupt that returns at once ~1-5 us.
GAP_NS = 50_000
DEFAULT_PROBE_SECONDS = 0.25  # rtdrive bench: before and after each benchmark


@dataclass(frozen=True, slots=True)
class HostAvailability:
    lost_fraction: float  # of the probe's span, spent in pauses longer than GAP_NS
    max_gap_ms: float  # the longest pause
    gaps: int  # how many pauses


def probe_host(seconds: float, clock: Callable[[], int] = time.perf_counter_ns,
               gap_ns: int = GAP_NS) -> HostAvailability:
    """Spin for ``seconds`` on ``clock`` (ns) and measure the pauses between consecutive reads."""
    if not seconds > 0.0:
        raise ValueError(f"probe_host: seconds must be positive, got {seconds}")
    start = prev = clock()
    end = start + int(seconds * 1e9)
    lost = gaps = longest = 0
    while prev < end:
        t = clock()
        step = t - prev
        if step > gap_ns:
            lost += step
            gaps += 1
            if step > longest:
                longest = step
        prev = t
    span = prev - start
    return HostAvailability(lost / span, longest / 1e6, gaps)
