"""Stream liveness, computed from arrivals: a stream is alive if a fresh message came within N periods.

Only a message whose ``t_ns`` is newer than the last one refreshes liveness: a duplicate or a time
going backwards is counted and cannot fake a live sensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    period_ns: int
    max_missed_periods: float = 3.0  # alive while age <= max_missed_periods * period

    @property
    def max_age_ns(self) -> int:
        return int(self.max_missed_periods * self.period_ns)


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """Per stream: last accepted arrival and data time, and counters."""

    last_arrival_ns: int = -1
    last_t_ns: int = -(2**62)
    accepted: int = 0
    stale_or_duplicate: int = 0  # t_ns not newer than the last accepted message
    nonfinite: int = 0  # messages carrying NaN/inf


@dataclass(frozen=True, slots=True)
class HealthState:
    streams: dict[str, StreamHealth] = field(default_factory=dict)


def observe(state: HealthState, stream: str, t_ns: int, arrival_ns: int, finite: bool = True) -> HealthState:
    p = state.streams.get(stream) or StreamHealth()
    # Positional construction: this runs for every message, and dataclasses.replace costs ~10x more.
    if t_ns <= p.last_t_ns:
        new = StreamHealth(p.last_arrival_ns, p.last_t_ns, p.accepted, p.stale_or_duplicate + 1, p.nonfinite)
    elif not finite:
        new = StreamHealth(p.last_arrival_ns, p.last_t_ns, p.accepted, p.stale_or_duplicate, p.nonfinite + 1)
    else:
        new = StreamHealth(int(arrival_ns), int(t_ns), p.accepted + 1, p.stale_or_duplicate, p.nonfinite)
    streams = dict(state.streams)
    streams[stream] = new
    return HealthState(streams)


def stream_alive(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    h = state.streams.get(spec.name)
    return h is not None and h.accepted > 0 and now_ns - h.last_arrival_ns <= spec.max_age_ns


def all_finite(*values) -> bool:
    """True if every float scalar and every element of every array is finite."""
    for v in values:
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif not np.isfinite(v).all():
            return False
    return True
