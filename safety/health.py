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
synchroniser keeps dropping cannot make it look alive again until fusion drops it too. "Without a
usable message" is counted from the last usable arrival or, before any, from the start, as
``stream_alive`` counts it: a first message dropped inside the start-up grace leaves the grace, and
the arrivals inside it, as if that message had never come.

A stream is frozen when its messages keep coming, fresh, but each repeats the data of the one
before (``repeats_previous``: content, not identity; a frozen sensor delivers new buffers holding
the same values). Sensor noise makes an exact repeat of a real measurement all but impossible, so
``max_repeats`` of them in a row (about 0.3 s worth, ``FreezeConfig``) mark the stream frozen, and
the monitor treats it as lost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import sub
from typing import Any

import numpy as np

from core.config import rng
from core.records import fast_frozen_init
from safety.rules import EGO_SENSORS, EGO_STREAMS, OBJECT_SENSORS, OBJECT_STREAMS

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
    # Frozen after this many consecutive messages repeating their predecessor's data; 0: not watched.
    max_repeats: int = 0
    # Derived once here (max_missed_periods * period_ns): the monitor reads it per stream at 100 Hz.
    max_age_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_age_ns", int(self.max_missed_periods * self.period_ns))


@fast_frozen_init
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
    # Arrivals in (held_out_from_ns, held_out_until_ns] are held out of liveness (see above). The
    # window opens where the stream, without a usable message, becomes lost (which may still be
    # ahead when the drop is reported); a usable arrival before then closes it.
    held_out_from_ns: int = NEVER_NS
    held_out_until_ns: int = NEVER_NS
    held_out: int = 0  # accepted messages held out of liveness that way
    repeats: int = 0  # consecutive accepted messages repeating their predecessor's data
    frozen_events: int = 0  # times ``repeats`` reached the stream's max_repeats
    # Derived once per arrival (in C: map, max), read by the 100 Hz rate check: the longest interval
    # between consecutive recent usable arrivals (0 with fewer than two).
    max_interval_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        recent = self.recent_arrivals_ns
        # map stops at its shorter input: the pairs (recent[i + 1], recent[i]). Stored through the
        # slot's descriptor, as fast_frozen_init stores the other fields (object.__setattr__ looks
        # the name up first).
        _set_max_interval_ns(self, max(map(sub, recent[1:], recent)) if len(recent) > 1 else 0)


_set_max_interval_ns = StreamHealth.__dict__["max_interval_ns"].__set__


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class HealthState:
    streams: dict[str, StreamHealth] = field(default_factory=dict)
    # Monitoring starts here: a stream that never delivered counts as lost only once its maximum
    # age has passed since the start (its first message is still in flight before that).
    start_ns: int = 0


def observe(state: HealthState, stream: str, t_ns: int, arrival_ns: int, finite: bool = True,
            well_formed: bool = True, repeated: bool = False, max_repeats: int = 0) -> HealthState:
    """One arrival on ``stream``. ``repeated``: its data repeat the stream's previous message's
    (``repeats_previous``); ``max_repeats``: the stream's spec's, for counting frozen events."""
    p = state.streams.get(stream) or StreamHealth()
    # Positional construction: this runs for every message, and dataclasses.replace costs ~10x more.
    acc, stale, nonfin, bad = p.accepted, p.stale_or_duplicate, p.nonfinite, p.malformed
    last_arr, last_t, last_bad, recent = p.last_arrival_ns, p.last_t_ns, p.last_bad_arrival_ns, p.recent_arrivals_ns
    recent_t, dropped, held_until, held = p.recent_t_ns, p.sync_dropped, p.held_out_until_ns, p.held_out
    held_from = p.held_out_from_ns
    reps, frozen = p.repeats, p.frozen_events
    if not well_formed:
        new = StreamHealth(last_arr, last_t, acc, stale, nonfin, bad + 1, int(arrival_ns), recent, recent_t, dropped,
                           held_from, held_until, held, reps, frozen)
    elif t_ns <= last_t:
        new = StreamHealth(last_arr, last_t, acc, stale + 1, nonfin, bad, last_bad, recent, recent_t, dropped,
                           held_from, held_until, held, reps, frozen)
    elif not finite:
        new = StreamHealth(last_arr, last_t, acc, stale, nonfin + 1, bad, int(arrival_ns), recent, recent_t, dropped,
                           held_from, held_until, held, reps, frozen)
    else:
        if repeated:
            reps += 1
            if reps == max_repeats:
                frozen += 1
        else:
            reps = 0
        if held_from < arrival_ns <= held_until:
            # Fresh, but the synchroniser has been dropping this stream: not usable until it stops.
            new = StreamHealth(last_arr, int(t_ns), acc + 1, stale, nonfin, bad, last_bad, recent, recent_t, dropped,
                               held_from, held_until, held + 1, reps, frozen)
        else:
            if len(recent) >= RATE_WINDOW:
                recent, recent_t = (recent[1 - RATE_WINDOW:] + (int(arrival_ns),),
                                    recent_t[1 - RATE_WINDOW:] + (int(t_ns),))
            else:
                recent, recent_t = recent + (int(arrival_ns),), recent_t + (int(t_ns),)
            # Usable: the stream is not without a message any more, so a window still ahead closes.
            new = StreamHealth(int(arrival_ns), int(t_ns), acc + 1, stale, nonfin, bad, last_bad, recent, recent_t,
                               dropped, NEVER_NS, NEVER_NS, held, reps, frozen)
    streams = dict(state.streams)
    streams[stream] = new
    return HealthState(streams, state.start_ns)


def sync_dropped(state: HealthState, spec: StreamSpec, t_ns: int, now_ns: int) -> HealthState:
    """Fusion's synchroniser, running at ``now_ns``, dropped the message of ``spec``'s stream stamped
    ``t_ns`` (on the stream's own clock, as it arrived) as late or from the future: it is withdrawn
    from the usable arrivals. Arrivals up to the stream's maximum age from ``now_ns`` are then held
    out from the moment the stream has been without a usable message for that long (see the
    module's note): at once if it already has, later if that moment is still ahead.

    A duplicate is not reported here: its ``t_ns`` is not newer than the last accepted one, so
    ``observe`` never counted it. Runs only for dropped messages, never on the healthy path."""
    p = state.streams.get(spec.name) or StreamHealth()
    recent, recent_t = p.recent_arrivals_ns, p.recent_t_ns
    if t_ns in recent_t:  # else already held out (or older than the window): nothing to withdraw
        i = recent_t.index(t_ns)
        recent, recent_t = recent[:i] + recent[i + 1:], recent_t[:i] + recent_t[i + 1:]
    last_arr = recent[-1] if recent else -1
    # Before any usable message the age runs from the start, as in stream_alive: a first message
    # dropped inside the start-up grace must not end the grace, nor hold out the good ones after it.
    since_ns = last_arr if last_arr >= 0 else state.start_ns
    # The start is replaced, not the earlier one kept: between two drops with no usable arrival
    # (which closes the window) withdrawals can only move ``since_ns`` back.
    held_from = since_ns + spec.max_age_ns
    held_until = max(p.held_out_until_ns, now_ns + spec.max_age_ns)
    new = StreamHealth(last_arr, p.last_t_ns, p.accepted, p.stale_or_duplicate, p.nonfinite, p.malformed,
                       p.last_bad_arrival_ns, recent, recent_t, p.sync_dropped + 1, held_from, held_until,
                       p.held_out, p.repeats, p.frozen_events)
    streams = dict(state.streams)
    streams[spec.name] = new
    return HealthState(streams, state.start_ns)


def stream_alive(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    h = state.streams.get(spec.name)
    if h is None or h.last_arrival_ns < 0:  # no usable message yet
        return now_ns - state.start_ns <= spec.max_age_ns
    return now_ns - h.last_arrival_ns <= spec.max_age_ns


def stream_checks(state: HealthState, spec: StreamSpec, now_ns: int) -> tuple[bool, bool, bool]:
    """``stream_alive``, ``stream_rate_ok`` and ``stream_bad_data`` of one stream with one lookup of
    its health: the monitor asks all three of every stream at 100 Hz. Rate and data are judged
    only for a live stream; a lost one gives (False, True, False)."""
    h = state.streams.get(spec.name)
    if h is None or h.last_arrival_ns < 0:  # no usable message yet
        if now_ns - state.start_ns > spec.max_age_ns:
            return False, True, False
        if h is None:
            return True, True, False
    elif now_ns - h.last_arrival_ns > spec.max_age_ns:
        return False, True, False
    return True, _rate_ok(h, spec, now_ns), now_ns - h.last_bad_arrival_ns <= spec.max_age_ns


def stream_rate_ok(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    """False while the mean interval between recent usable arrivals exceeds the tolerance.
    Intervals beyond the maximum age are outages (reported as a lost stream), not a rate, and are
    left out; the interval still open counts once it is longer than the mean, so a stream thinning
    out is seen before its next message."""
    h = state.streams.get(spec.name)
    return h is None or _rate_ok(h, spec, now_ns)


def _rate_ok(h: StreamHealth, spec: StreamSpec, now_ns: int) -> bool:
    if len(h.recent_arrivals_ns) <= RATE_MIN_INTERVALS:
        return True
    recent, max_age = h.recent_arrivals_ns, spec.max_age_ns
    # With no outage in the window (nearly always) the intervals telescope to the window's span.
    if h.max_interval_ns <= max_age:
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


def stream_frozen(state: HealthState, spec: StreamSpec) -> bool:
    """True while the stream's last ``spec.max_repeats`` (> 0) messages each repeated the data of
    the one before: fresh messages, stale data."""
    h = state.streams.get(spec.name)
    return h is not None and 0 < spec.max_repeats <= h.repeats


def stream_bad_data(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    """True while a non-finite or malformed message came within the stream's maximum age."""
    h = state.streams.get(spec.name)
    return h is not None and now_ns - h.last_bad_arrival_ns <= spec.max_age_ns


# Streams watched for freezing by default: the sensors. The oracle streams of simulation runs are
# not: noise-free at standstill, or empty with no actor about, they repeat legitimately.
FREEZE_WATCHED = OBJECT_SENSORS + EGO_SENSORS
FREEZE_STREAMS = OBJECT_STREAMS + EGO_STREAMS  # every stream a run can have
_SAMPLE = 64  # elements of a large array compared first: different data nearly always differ there


@dataclass(frozen=True, slots=True)
class FreezeConfig:
    """When a stream counts as frozen: after ``hold_s`` worth of its messages in a row (at its rate,
    at least 2) each repeated its predecessor's data. 0.3 s is 3 lidar or GNSS messages, 6 camera
    or radar, 15 wheel and 30 IMU messages, and keeps detection plus reaction inside the 0.5 s
    FTTI of an object sensor."""

    hold_s: float = field(default=0.3, metadata=rng(0.01, 60.0))
    # Per stream, the number of repeats instead (0: not watched), for any stream of the run.
    repeats: dict[str, int] = field(default_factory=dict, metadata=rng(0, 1_000_000))

    def __post_init__(self) -> None:
        # A misspelt stream would silently keep its default: name it, as unknown keys are elsewhere.
        for name in self.repeats:
            if name not in FREEZE_STREAMS:
                raise ValueError(f"repeats.{name}: unknown stream; streams are {', '.join(FREEZE_STREAMS)}")

    def max_repeats(self, stream: str, rate_hz: float) -> int:
        if stream in self.repeats:
            return self.repeats[stream]
        if stream not in FREEZE_WATCHED:
            return 0
        return max(2, math.ceil(self.hold_s * rate_hz - 1e-9))  # 0.3 * 20 is 6.000000000000001


def repeats_previous(prev: Any, msg: Any) -> bool:
    """True if ``msg`` repeats ``prev``'s data: the same type, every field but ``t_ns`` equal in
    content (arrays by value, not identity) and something in it that sensor noise would change.

    A payload with nothing of the kind (no array element, no JPEG byte, every float zero) repeats
    legitimately and never counts: an empty radar scan with nothing in view, and a wheel speed of
    exactly 0 (the encoders at standstill; the sim clips its noisy speed at zero, so it reads 0 about
    half the time). A wheel frozen at 0 while moving is therefore not seen here.

    Cost per message: large arrays are compared on a strided sample of ``_SAMPLE`` elements first,
    which different data fail at once; the full comparison runs only on a sample that matched."""
    if prev is None or type(prev) is not type(msg):
        return False
    informative = False
    for name in msg.__slots__:
        if name == "t_ns":
            continue
        b = getattr(msg, name)
        a = getattr(prev, name)
        if isinstance(b, np.ndarray):
            if b.size:
                informative = True
            if a is b:
                continue
            if not isinstance(a, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
                return False
            if not _arrays_equal(a, b):
                return False
        elif isinstance(b, float):
            if b != 0.0:
                informative = True
            if a != b:  # NaN differs from itself: never a repeat (nor accepted)
                return False
        elif isinstance(b, bytes):
            if b:
                informative = True
            if a != b:
                return False
        elif a != b:
            return False
    return informative


def _arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Element-wise equality of two arrays of one shape and dtype."""
    n = b.size
    if n <= _SAMPLE:
        return a.tolist() == b.tolist()
    if a.flags.c_contiguous and b.flags.c_contiguous:
        step = n // _SAMPLE
        if a.reshape(-1)[::step].tolist() != b.reshape(-1)[::step].tolist():
            return False
    return bool(np.array_equal(a, b))
