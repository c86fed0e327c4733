"""Stream health, computed from arrivals: alive, rate, and data quality per input stream.

A stream is alive if a usable message came within N periods. Only a message whose ``t_ns`` is newer
than the last one refreshes liveness: a duplicate or a time going backwards is counted and cannot
fake a live sensor. The rate is the mean interval over the last few usable arrivals; a
non-finite or malformed message is counted and remembered (when it came) so that a stream which is
alive but delivering bad data is still reported.

Usable also means that fusion could use it: a message the synchroniser drops as late or from the
future (``sync_dropped``, fed back from fusion's records) is withdrawn from liveness and rate as if
it had never come. A drop is only known when fusion next runs, so a fresh arrival counts at once;
but once drops have left the stream without a usable message for its maximum age, its arrivals
are held out until no drop has come for that long, so that each new message of a stream the
synchroniser keeps dropping cannot make it look alive again until fusion drops it too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import sub
from typing import Any

import numpy as np

from core.jit import kernel

NEVER_NS = -(2**62)
RATE_WINDOW = 9  # accepted arrivals kept for the rate: 8 intervals, about a second at 10 Hz
RATE_MIN_INTERVALS = 4  # intervals (outages excluded) needed before the rate is judged


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    period_ns: int
    max_missed_periods: float = 3.0  # alive while age <= max_missed_periods * period
    # The rate is out of tolerance while the mean interval exceeds this multiple of the period.
    rate_tolerance: float = 1.5
    # Derived once here (max_missed_periods * period_ns): the monitor reads it per stream at 100 Hz.
    max_age_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_age_ns", int(self.max_missed_periods * self.period_ns))


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """Per stream: last usable arrival and last data time, the recent usable arrivals, and counters."""

    last_arrival_ns: int = -1  # the last usable arrival; -1: none (yet, or all withdrawn)
    last_t_ns: int = NEVER_NS
    accepted: int = 0  # fresh, finite, well-formed messages (held-out ones included)
    stale_or_duplicate: int = 0  # t_ns not newer than the last accepted message
    nonfinite: int = 0  # messages carrying NaN/inf
    malformed: int = 0  # payloads of the wrong shape
    last_bad_arrival_ns: int = NEVER_NS  # arrival of the last non-finite or malformed message
    recent_arrivals_ns: tuple[int, ...] = ()  # the last RATE_WINDOW usable arrivals, oldest first
    recent_t_ns: tuple[int, ...] = ()  # their t_ns (a sync drop names its message by it)
    sync_dropped: int = 0  # messages the synchroniser dropped as late or from the future
    held_out_until_ns: int = NEVER_NS  # arrivals up to here are held out of liveness (see above)
    held_out: int = 0  # accepted messages held out of liveness that way


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
    last_arr, last_t, last_bad, recent = p.last_arrival_ns, p.last_t_ns, p.last_bad_arrival_ns, p.recent_arrivals_ns
    recent_t, dropped, held_until, held = p.recent_t_ns, p.sync_dropped, p.held_out_until_ns, p.held_out
    if not well_formed:
        new = StreamHealth(last_arr, last_t, acc, stale, nonfin, bad + 1, int(arrival_ns), recent, recent_t, dropped,
                           held_until, held)
    elif t_ns <= last_t:
        new = StreamHealth(last_arr, last_t, acc, stale + 1, nonfin, bad, last_bad, recent, recent_t, dropped,
                           held_until, held)
    elif not finite:
        new = StreamHealth(last_arr, last_t, acc, stale, nonfin + 1, bad, int(arrival_ns), recent, recent_t, dropped,
                           held_until, held)
    elif arrival_ns <= held_until:
        # Fresh, but the synchroniser has been dropping this stream: not usable until it stops.
        new = StreamHealth(last_arr, int(t_ns), acc + 1, stale, nonfin, bad, last_bad, recent, recent_t, dropped,
                           held_until, held + 1)
    else:
        if len(recent) >= RATE_WINDOW:
            recent, recent_t = recent[1 - RATE_WINDOW:] + (int(arrival_ns),), recent_t[1 - RATE_WINDOW:] + (int(t_ns),)
        else:
            recent, recent_t = recent + (int(arrival_ns),), recent_t + (int(t_ns),)
        new = StreamHealth(int(arrival_ns), int(t_ns), acc + 1, stale, nonfin, bad, last_bad, recent, recent_t,
                           dropped, held_until, held)
    streams = dict(state.streams)
    streams[stream] = new
    return HealthState(streams, state.start_ns)


def sync_dropped(state: HealthState, spec: StreamSpec, t_ns: int, now_ns: int) -> HealthState:
    """Fusion's synchroniser, running at ``now_ns``, dropped the message of ``spec``'s stream stamped
    ``t_ns`` (on the stream's own clock, as it arrived) as late or from the future: it is withdrawn
    from the usable arrivals. If the stream is then without a usable message for its maximum age,
    its arrivals are held out for that long again (see the module's note).

    A duplicate is not reported here: its ``t_ns`` is not newer than the last accepted one, so
    ``observe`` never counted it. Runs only for dropped messages, never on the healthy path."""
    p = state.streams.get(spec.name) or StreamHealth()
    recent, recent_t = p.recent_arrivals_ns, p.recent_t_ns
    if t_ns in recent_t:  # else already held out (or older than the window): nothing to withdraw
        i = recent_t.index(t_ns)
        recent, recent_t = recent[:i] + recent[i + 1:], recent_t[:i] + recent_t[i + 1:]
    last_arr = recent[-1] if recent else -1
    held_until = p.held_out_until_ns
    if last_arr < 0 or now_ns - last_arr > spec.max_age_ns:
        held_until = max(held_until, now_ns + spec.max_age_ns)
    new = StreamHealth(last_arr, p.last_t_ns, p.accepted, p.stale_or_duplicate, p.nonfinite, p.malformed,
                       p.last_bad_arrival_ns, recent, recent_t, p.sync_dropped + 1, held_until, p.held_out)
    streams = dict(state.streams)
    streams[spec.name] = new
    return HealthState(streams, state.start_ns)


def stream_alive(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    h = state.streams.get(spec.name)
    if h is None or h.last_arrival_ns < 0:  # no usable message yet
        return now_ns - state.start_ns <= spec.max_age_ns
    return now_ns - h.last_arrival_ns <= spec.max_age_ns


def stream_rate_ok(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    """False while the mean interval between recent usable arrivals exceeds the tolerance.
    Intervals beyond the maximum age are outages (reported as a lost stream), not a rate, and are
    left out; the interval still open counts once it is longer than the mean, so a stream thinning
    out is seen before its next message."""
    h = state.streams.get(spec.name)
    if h is None or len(h.recent_arrivals_ns) <= RATE_MIN_INTERVALS:
        return True
    recent, max_age = h.recent_arrivals_ns, spec.max_age_ns
    # The intervals' maximum in C (map, max) rather than a Python loop over them: with no outage in
    # the window (nearly always) the intervals telescope to the window's span.
    if max(map(sub, recent[1:], recent[:-1])) <= max_age:
        total_ns, count = recent[-1] - recent[0], len(recent) - 1
    else:
        total_ns, count = 0, 0
        for a, b in zip(recent, recent[1:]):
            if b - a <= max_age:
                total_ns += b - a
                count += 1
    if count < RATE_MIN_INTERVALS:
        return True
    open_ns = now_ns - recent[-1]
    mean = total_ns / count
    if mean < open_ns <= max_age:
        mean = (total_ns + open_ns) / (count + 1)
    return mean <= spec.rate_tolerance * spec.period_ns


def stream_bad_data(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    """True while a non-finite or malformed message came within the stream's maximum age."""
    h = state.streams.get(spec.name)
    return h is not None and now_ns - h.last_bad_arrival_ns <= spec.max_age_ns


def message_finite(msg: Any) -> bool:
    """True if every float field and every element of every float array field of a (slotted)
    message is finite; other fields are not data and are skipped.

    Runs for every message of the stack (~370 a second in an oracle run). A message's arrays are
    small, so numpy's per-call cost, not the arithmetic, decided the time: each float array is
    flattened, all are copied into one float64 buffer (a float32 or float64 value keeps its
    finiteness) and one compiled pass reads it. A float scalar is checked as it is met."""
    arrays = []
    for name in getattr(msg, "__slots__", ()):
        v = getattr(msg, name)
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            arrays.append(v.ravel())
    if not arrays:
        return True
    return _all_finite(np.concatenate(arrays, dtype=np.float64))


@kernel("boolean(float64[::1])")
def _all_finite(values):
    for v in values:
        if not math.isfinite(v):
            return False
    return True
