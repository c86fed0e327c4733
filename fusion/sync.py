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
from typing import Any, Iterable

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


@dataclass(frozen=True, slots=True)
class Released:
    stream: str
    msg: Any  # the message with t_ns moved onto the stack clock


@dataclass(frozen=True, slots=True)
class SyncCounters:
    applied: int = 0
    late: int = 0
    duplicate: int = 0
    future: int = 0
    resets: int = 0


@dataclass(frozen=True, slots=True)
class SyncState:
    buffer: tuple[tuple[int, str, int, Any], ...] = ()  # sorted (t_ns, stream, seq, msg)
    released_keys: tuple[tuple[int, str], ...] = ()  # recent (t_ns, stream), oldest first
    watermark_ns: int | None = None  # newest released time
    last_now_ns: int | None = None
    seq: int = 0  # arrival counter: a deterministic tie-break, never compared across runs
    counters: SyncCounters = field(default_factory=SyncCounters)


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
    n_dropped = [0, 0, 0, 0, 0]  # indexed by Decision
    if state.last_now_ns is not None and now_ns < state.last_now_ns:
        records.append(SyncRecord(now_ns, "", -1, Decision.RESET))
        n_dropped[Decision.RESET] += 1
        state = SyncState(counters=state.counters)
    buffer = list(state.buffer)
    released_keys = state.released_keys
    seq = state.seq
    for stream, msg in arrivals:
        sc = _stream(cfg, stream)
        t = int(msg.t_ns) + sc.clock_offset_ns
        key = (t, stream)
        behind = state.watermark_ns is not None and t <= state.watermark_ns
        # The buffer is sorted by (t, stream, seq), so a buffered twin sits exactly where the key
        # would be inserted. Released keys all lie at or behind the watermark: search them only there.
        i = bisect.bisect_left(buffer, key)
        buffered_twin = i < len(buffer) and buffer[i][0] == t and buffer[i][1] == stream
        if buffered_twin or (behind and key in released_keys):
            decision = Decision.DROPPED_DUPLICATE
        elif now_ns - t > sc.latency_window_ns or (behind and t < state.watermark_ns):
            decision = Decision.DROPPED_LATE
        elif t - now_ns > cfg.future_tolerance_ns:
            decision = Decision.DROPPED_FUTURE
        else:
            if sc.clock_offset_ns:
                msg = dataclasses.replace(msg, t_ns=t)
            # seq is unique, so tuple comparison never reaches the message itself.
            buffer.insert(i, (t, stream, seq, msg))
            seq += 1
            continue
        records.append(SyncRecord(now_ns, stream, t, decision))
        n_dropped[decision] += 1

    horizon = now_ns - cfg.max_window_ns
    n_out = bisect.bisect_left(buffer, (horizon + 1,))  # a 1-tuple sorts before (horizon + 1, ...)
    out = buffer[:n_out]
    released = tuple(Released(e[1], e[3]) for e in out)
    records.extend(SyncRecord(now_ns, e[1], e[0], Decision.APPLIED) for e in out)
    watermark = out[-1][0] if out else state.watermark_ns
    if out:
        released_keys = (released_keys + tuple((e[0], e[1]) for e in out))[-cfg.duplicate_memory:]
    c = state.counters
    counters = SyncCounters(c.applied + n_out, c.late + n_dropped[Decision.DROPPED_LATE],
                            c.duplicate + n_dropped[Decision.DROPPED_DUPLICATE],
                            c.future + n_dropped[Decision.DROPPED_FUTURE],
                            c.resets + n_dropped[Decision.RESET])
    new_state = SyncState(buffer=tuple(buffer[n_out:]), released_keys=released_keys,
                          watermark_ns=watermark, last_now_ns=now_ns, seq=seq,
                          counters=counters)
    return new_state, released, tuple(records)
