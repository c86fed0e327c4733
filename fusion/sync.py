"""Time synchronisation: per-stream latency windows, ordered release, recorded decisions.

Each stream's timestamps are first moved onto the stack clock (``t = t_sensor + clock_offset``).
A message is buffered on arrival and released once the logical time ``now`` has passed it by the
largest latency window of all streams: by then no stream can still deliver anything older, so the
released sequence is in timestamp order and the filters never step backwards. On arrival a message
is dropped when it is

* late: it arrived more than its own stream's window after its timestamp, or it is older than the
  watermark (the newest time already released),
* a duplicate: its stream already delivered that timestamp (buffered or recently released),
* from the future: ahead of ``now`` by more than ``future_tolerance_ns`` (a broken sensor clock
  would otherwise hold the watermark hostage).

If ``now`` itself moves backwards (a replay loop, a clock reset) the buffers are cleared and a reset
record tells the runtime to reset the filters. Every decision is returned as a ``SyncRecord`` so a
log can show, and a replay reproduce, exactly what was applied and what was dropped.
"""
from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Iterable, NamedTuple

from core.config import rng


class Decision(IntEnum):
    APPLIED = 0
    DROPPED_LATE = 1
    DROPPED_DUPLICATE = 2
    DROPPED_FUTURE = 3
    RESET = 4  # logical time went backwards: buffers cleared, filters must restart


@dataclass(frozen=True, slots=True)
class StreamConfig:
    latency_window_ns: int = field(default=100_000_000, metadata=rng(0, 10_000_000_000))
    clock_offset_ns: int = 0  # stack time minus sensor time


@dataclass(frozen=True, slots=True)
class SyncConfig:
    streams: dict[str, StreamConfig] = field(default_factory=dict)
    future_tolerance_ns: int = field(default=50_000_000, metadata=rng(0, 10_000_000_000))
    # Released keys remembered for duplicate detection; older ones are caught as late anyway.
    duplicate_memory: int = field(default=256, metadata=rng(1, 100_000))

    # Derived once: every sync_step needs it.
    max_window_ns: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_window_ns",
                           max((s.latency_window_ns for s in self.streams.values()), default=0))


@dataclass(frozen=True, slots=True)
class SyncRecord:
    now_ns: int  # logical time of the decision
    stream: str
    t_ns: int  # the message's time on the stack clock (after the stream's offset); -1 for RESET
    decision: Decision


# Released, SyncCounters and SyncState are immutable NamedTuples rather than frozen dataclasses:
# each is built for every message, and a frozen dataclass's __init__ (one object.__setattr__ per
# field) costs about as much as the whole synchronisation decision.
class Released(NamedTuple):
    stream: str
    msg: Any  # the message with t_ns moved onto the stack clock


class SyncCounters(NamedTuple):
    applied: int = 0
    late: int = 0
    duplicate: int = 0
    future: int = 0
    resets: int = 0


class SyncState(NamedTuple):
    buffer: tuple[tuple[int, str, int, Any], ...] = ()  # sorted (t_ns, stream, seq, msg)
    released_keys: tuple[tuple[int, str], ...] = ()  # recent (t_ns, stream), oldest first
    watermark_ns: int | None = None  # newest released time
    last_now_ns: int | None = None
    seq: int = 0  # arrival counter: a deterministic tie-break, never compared across runs
    counters: SyncCounters = SyncCounters()


def _retimed(msg: Any, t_ns: int) -> Any:
    """``msg`` with ``t_ns`` replaced. Messages are frozen slotted dataclasses already validated
    at their source, so the copy takes their slots as they are (``dataclasses.replace`` would rerun
    __init__ at three times the cost); anything else goes through ``dataclasses.replace``."""
    slots = getattr(type(msg), "__slots__", None)
    if not slots or not dataclasses.is_dataclass(msg) or type(msg).__base__ is not object:
        return dataclasses.replace(msg, t_ns=t_ns)
    out = object.__new__(type(msg))
    for name in slots:
        object.__setattr__(out, name, getattr(msg, name))
    object.__setattr__(out, "t_ns", t_ns)
    return out


def _stream(cfg: SyncConfig, name: str) -> StreamConfig:
    try:
        return cfg.streams[name]
    except KeyError:
        raise ValueError(f"sync: unknown stream {name!r}; configured: {', '.join(sorted(cfg.streams))}") from None


def sync_step(state: SyncState, arrivals: Iterable[tuple[str, Any]], now_ns: int,
              cfg: SyncConfig) -> tuple[SyncState, tuple[Released, ...], tuple[SyncRecord, ...]]:
    """Take the messages that arrived by ``now_ns`` and release those whose time has come.

    ``arrivals`` are (stream, message) pairs, each message with an integer ``t_ns`` on its sensor's
    clock. Returns the new state, the released messages in time order and every decision made.
    """
    records: list[SyncRecord] = []
    n_late = n_duplicate = n_future = n_reset = 0
    if state.last_now_ns is not None and now_ns < state.last_now_ns:
        records.append(SyncRecord(now_ns, "", -1, Decision.RESET))
        n_reset = 1
        state = SyncState(counters=state.counters)
    buffer = list(state.buffer)
    released_keys = state.released_keys
    watermark = state.watermark_ns
    seq = state.seq
    streams = cfg.streams
    for stream, msg in arrivals:
        sc = streams.get(stream)
        if sc is None:
            _stream(cfg, stream)  # raises with the list of configured streams
        t = int(msg.t_ns) + sc.clock_offset_ns
        key = (t, stream)
        behind = watermark is not None and t <= watermark
        # The buffer is sorted by (t, stream, seq), so a buffered twin sits exactly where the key
        # would be inserted. Released keys were released in time order, so they are sorted too and
        # all lie at or behind the watermark: bisect them only there.
        i = bisect.bisect_left(buffer, key)
        if i < len(buffer) and buffer[i][0] == t and buffer[i][1] == stream:
            decision = Decision.DROPPED_DUPLICATE
            n_duplicate += 1
        elif behind and _contains_sorted(released_keys, key):
            decision = Decision.DROPPED_DUPLICATE
            n_duplicate += 1
        elif now_ns - t > sc.latency_window_ns or (behind and t < watermark):
            decision = Decision.DROPPED_LATE
            n_late += 1
        elif t - now_ns > cfg.future_tolerance_ns:
            decision = Decision.DROPPED_FUTURE
            n_future += 1
        else:
            if sc.clock_offset_ns:
                msg = _retimed(msg, t)
            # seq is unique, so tuple comparison never reaches the message itself.
            buffer.insert(i, (t, stream, seq, msg))
            seq += 1
            continue
        records.append(SyncRecord(now_ns, stream, t, decision))

    # A 1-tuple sorts before every (horizon + 1, ...) entry: everything at or before the horizon goes.
    n_out = bisect.bisect_left(buffer, (now_ns - cfg.max_window_ns + 1,)) if buffer else 0
    released: tuple[Released, ...] = ()
    if n_out:
        out_keys = []
        out_released = []
        for e in buffer[:n_out]:
            out_released.append(Released(e[1], e[3]))
            records.append(SyncRecord(now_ns, e[1], e[0], Decision.APPLIED))
            out_keys.append((e[0], e[1]))
        released = tuple(out_released)
        watermark = buffer[n_out - 1][0]
        merged = released_keys + tuple(out_keys)
        if released_keys and out_keys[0] < released_keys[-1]:
            # A late-accepted twin time (t == watermark, another stream) can sort before keys
            # already released at that time: keep the memory sorted for the bisect above.
            merged = tuple(sorted(merged))
        released_keys = merged[-cfg.duplicate_memory:]
        buffer = buffer[n_out:]
    counters = state.counters
    if n_out or n_late or n_duplicate or n_future or n_reset:
        c = counters
        counters = SyncCounters(c.applied + n_out, c.late + n_late, c.duplicate + n_duplicate,
                                c.future + n_future, c.resets + n_reset)
    new_state = SyncState(buffer=tuple(buffer), released_keys=released_keys, watermark_ns=watermark,
                          last_now_ns=now_ns, seq=seq, counters=counters)
    return new_state, released, tuple(records)


def _contains_sorted(keys: tuple[tuple[int, str], ...], key: tuple[int, str]) -> bool:
    i = bisect.bisect_left(keys, key)
    return i < len(keys) and keys[i] == key
