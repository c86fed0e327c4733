"""Clocks: the source of logical time ``t_ns`` for the scheduler.

Stages never read a clock; the scheduler hands them ``t_ns``. Compute time is measured separately,
by an injected timer (``time.perf_counter_ns`` in real runs, a fake in tests).
"""
from __future__ import annotations

import time
from typing import Callable, Protocol

NS_PER_S = 1_000_000_000
Timer = Callable[[], int]  # returns a monotonic compute-time reading in ns


def s_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_S))


def ns_to_s(t_ns: int) -> float:
    return t_ns / NS_PER_S


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def wait_until(self, t_ns: int) -> None:
        """Return once logical time has reached ``t_ns``."""


class SimulatedClock:
    """Logical time that jumps to each event: no sleeping, fully deterministic."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = int(start_ns)

    def now_ns(self) -> int:
        return self._now_ns

    def wait_until(self, t_ns: int) -> None:
        if t_ns > self._now_ns:
            self._now_ns = int(t_ns)


class WallClock:
    """Logical time = monotonic wall time since construction; waiting sleeps."""

    def __init__(self, start_ns: int = 0, monotonic_ns: Timer = time.monotonic_ns,
                 sleep_s: Callable[[float], None] = time.sleep) -> None:
        self._origin_ns = monotonic_ns() - int(start_ns)
        self._monotonic_ns = monotonic_ns
        self._sleep_s = sleep_s

    def now_ns(self) -> int:
        return self._monotonic_ns() - self._origin_ns

    def wait_until(self, t_ns: int) -> None:
        remaining_ns = t_ns - self.now_ns()
        if remaining_ns > 0:
            self._sleep_s(remaining_ns / NS_PER_S)


class FakeTimer:
    """A compute-time timer for tests: each reading advances by the next scripted step."""

    def __init__(self, steps_ns: Callable[[], int] | int = 0) -> None:
        self._t_ns = 0
        self._steps = steps_ns

    def advance(self, dt_ns: int) -> None:
        self._t_ns += int(dt_ns)

    def __call__(self) -> int:
        step = self._steps() if callable(self._steps) else self._steps
        self._t_ns += int(step)
        return self._t_ns
