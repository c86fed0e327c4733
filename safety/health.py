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
    malformed: int = 0  # payloads of the wrong shape


@dataclass(frozen=True, slots=True)
class HealthState:
    streams: dict[str, StreamHealth] = field(default_factory=dict)
    # Monitoring starts here: a stream that never delivered counts as lost only once its maximum
    # age has passed since the start (its first message is still in flight before that).
    start_ns: int = 0


def observe(state: HealthState, stream: str, t_ns: int, arrival_ns: int, finite: bool = True,
            well_formed: bool = True) -> HealthState:
    p = state.streams.get(stream) or StreamHealth()
    # Positional construction: this runs for every message, and dataclasses.replace costs ~10x more.
    acc, stale, nonfin, bad = p.accepted, p.stale_or_duplicate, p.nonfinite, p.malformed
    if not well_formed:
        new = StreamHealth(p.last_arrival_ns, p.last_t_ns, acc, stale, nonfin, bad + 1)
    elif t_ns <= p.last_t_ns:
        new = StreamHealth(p.last_arrival_ns, p.last_t_ns, acc, stale + 1, nonfin, bad)
    elif not finite:
        new = StreamHealth(p.last_arrival_ns, p.last_t_ns, acc, stale, nonfin + 1, bad)
    else:
        new = StreamHealth(int(arrival_ns), int(t_ns), acc + 1, stale, nonfin, bad)
    streams = dict(state.streams)
    streams[stream] = new
    return HealthState(streams, state.start_ns)


def stream_alive(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    h = state.streams.get(spec.name)
    if h is None or h.accepted == 0:
        return now_ns - state.start_ns <= spec.max_age_ns
    return now_ns - h.last_arrival_ns <= spec.max_age_ns


def all_finite(*values) -> bool:
    """True if every float scalar and every element of every array is finite."""
    for v in values:
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif not np.isfinite(v).all():
            return False
    return True
