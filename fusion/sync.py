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

import dataclasses
from bisect import bisect_left
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Iterable, NamedTuple

from core import messages as core_messages
from core.config import rng


_new_tuple = tuple.__new__  # NamedTuples below are built with it: see SyncRecord and SyncState
_new_object = object.__new__


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


class SyncRecord(NamedTuple):
    """One synchroniser decision. An immutable NamedTuple: one is built for every message, and a
    frozen dataclass's generated __init__ (an object.__setattr__ per field) cost three times as much
    as ``tuple.__new__`` with the fields in order, which is how sync_step builds them. Run logs
    reflect its fields into a protobuf schema like any message (runtime/logs/dataclass_proto.py)."""
    now_ns: int  # logical time of the decision
    stream: str
    t_ns: int  # the message's time on the stack clock (after the stream's offset); -1 for RESET
    decision: Decision


def _record(now_ns: int, stream: str, t_ns: int, decision: Decision) -> SyncRecord:
    return _new_tuple(SyncRecord, (now_ns, stream, t_ns, decision))


# Looking a member up on an Enum class goes through the enum machinery, several times slower than
# a module global.
_APPLIED = Decision.APPLIED
_LATE = Decision.DROPPED_LATE
_DUPLICATE = Decision.DROPPED_DUPLICATE
_FUTURE = Decision.DROPPED_FUTURE
_RESET = Decision.RESET


# Released, SyncCounters and SyncState, like SyncRecord above, are immutable NamedTuples rather
# than frozen dataclasses: each is built for every message, and a frozen dataclass's __init__ (one
# object.__setattr__ per field) costs about as much as the whole synchronisation decision.
# sync_step builds them with tuple.__new__ and the fields in declaration order, skipping the
# generated __new__'s argument handling (half the cost again).


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
    """What the synchroniser carries between steps. A step returns a new state and never changes
    what an existing one holds.

    The keys released recently (for duplicate detection) are ``released_log[released_start:
    released_end]``, sorted, oldest first (``released_keys``). The log is shared between
    successive states and only ever grows at its end, so that remembering a released key costs
    O(1) instead of a copy of the whole memory per message: a step appends to the log only when
    its state's window ends at the log's end (the log is a list and ``len(released_log) ==
    released_end``); otherwise (the caller stepped an older state again, or the log is the empty
    default tuple) it copies the window into a new list first. Appending never changes an index
    that any existing state's window covers, so every state keeps seeing exactly the keys it was
    built with, whatever is stepped later. Two consequences: ``==`` between states also compares
    log entries past their windows (compare ``released_keys``), and one state must not be stepped
    from two threads at once (the length check and the append are two operations; the stack steps
    each stage from one thread).
    """
    # sorted (t_ns, stream, Released, (t_ns, stream)), each key once: what a release hands out and
    # remembers is built on arrival, so a step that releases a backlog at once does no more than
    # append it. A list that no step changes once a state holds it (sync_step copies it first).
    buffer: list[tuple[int, str, Released, tuple[int, str]]] | tuple[()] = ()
    released_log: list[tuple[int, str]] | tuple[()] = ()
    released_start: int = 0
    released_end: int = 0
    watermark_ns: int | None = None  # newest released time
    last_now_ns: int | None = None
    # The counters are flat fields, read together as ``counters``: a nested SyncCounters would be
    # one more tuple to unpack and rebuild for nearly every message.
    applied: int = 0
    late: int = 0
    duplicate: int = 0
    future: int = 0
    resets: int = 0

    @property
    def counters(self) -> SyncCounters:
        return SyncCounters(self.applied, self.late, self.duplicate, self.future, self.resets)

    @property
    def released_keys(self) -> tuple[tuple[int, str], ...]:
        """The remembered released (t_ns, stream) keys, oldest first."""
        return tuple(self.released_log[self.released_start:self.released_end])


def _retimed(msg: Any, t_ns: int) -> Any:
    """``msg`` with ``t_ns`` replaced. The stack's messages are frozen slotted dataclasses already
    validated at their source, so the copy takes their slots as they are (``dataclasses.replace``
    would rerun __init__ at three times the cost); anything else goes through
    ``dataclasses.replace``."""
    copy = _RETIMERS.get(type(msg))
    if copy is None:
        return dataclasses.replace(msg, t_ns=t_ns)
    return copy(msg, t_ns)


def _slot_copier(tp: type) -> Callable[[Any, int], Any] | None:
    """``copy(msg, t_ns)`` for messages of type ``tp``, a frozen slotted dataclass with no base
    class (so its own ``__slots__`` are all its fields): a new instance whose slots are set through
    their descriptors to ``msg``'s, ``t_ns`` to the given time. None for any other type.

    The copier is generated with one statement per slot, as dataclasses generates __init__: a loop
    over slot names with getattr and object.__setattr__ costs twice as much, and a clock-offset
    stream pays it for every message.
    """
    slots = getattr(tp, "__slots__", None)
    if not slots or not dataclasses.is_dataclass(tp) or tp.__base__ is not object or "t_ns" not in slots:
        return None
    env = {"_new": _new_object, "_tp": tp}
    lines = ["def copy(msg, t_ns):", "    out = _new(_tp)"]
    for k, name in enumerate(slots):
        env[f"_set{k}"] = getattr(tp, name).__set__
        lines.append(f"    _set{k}(out, t_ns)" if name == "t_ns" else f"    _set{k}(out, msg.{name})")
    lines.append("    return out")
    exec("\n".join(lines), env)  # slot names are identifiers: Python rejects any other __slots__
    return env["copy"]


# The copier of every message type of core.messages, generated once at import: a fixed table of
# the stack's own types, not a cache filled by whatever passes through.
_RETIMERS: dict[type, Callable[[Any, int], Any]] = {
    tp: copier for tp in vars(core_messages).values()
    if isinstance(tp, type) and tp.__module__ == core_messages.__name__
    and (copier := _slot_copier(tp)) is not None}


# The duplicate memory's forgotten keys are freed in batches of 1/_FORGET_BATCHES of it (sync_step).
_FORGET_BATCHES = 8


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
    buffer, log, start, end, watermark, last_now, applied, late, duplicate, future, resets = state
    if last_now is not None and now_ns < last_now:
        records.append(_record(now_ns, "", -1, _RESET))
        resets += 1
        buffer, log, start, end, watermark = (), (), 0, 0, None
    # The state's buffer is never changed once a state holds it: a step that buffers something
    # copies it into a private list at its first insertion, and the new state keeps that list (a
    # conversion back to a tuple cost as much as the copy). A step that buffers nothing copies
    # nothing.
    inserted = False
    streams = cfg.streams
    for stream, msg in arrivals:
        sc = streams.get(stream)
        if sc is None:
            _stream(cfg, stream)  # raises with the list of configured streams
        t = msg.t_ns
        if type(t) is not int:  # a numpy integer, say; int() of an int is that int, so skip the call
            t = int(t)
        offset = sc.clock_offset_ns
        t += offset
        key = (t, stream)
        behind = watermark is not None and t <= watermark
        # The buffer is sorted by (t, stream), each key at most once, so a buffered twin sits
        # exactly where the key would be inserted. Released keys were released in time order, so
        # they are sorted too and all lie at or behind the watermark: bisect them only there.
        i = bisect_left(buffer, key)
        if i < len(buffer) and buffer[i][3] == key:
            decision = _DUPLICATE
            duplicate += 1
        elif behind and _remembered(log, start, end, key):
            decision = _DUPLICATE
            duplicate += 1
        elif now_ns - t > sc.latency_window_ns or (behind and t < watermark):
            decision = _LATE
            late += 1
        elif t - now_ns > cfg.future_tolerance_ns:
            decision = _FUTURE
            future += 1
        else:
            if offset:
                msg = _retimed(msg, t)
            if not inserted:
                buffer = list(buffer)
                inserted = True
            # Keys are unique in the buffer, so tuple comparison never reaches the Released.
            buffer.insert(i, (t, stream, _new_tuple(Released, (stream, msg)), key))
            continue
        records.append(_record(now_ns, stream, t, decision))

    # Everything at or before the horizon goes: the buffer's leading entries older than ``after``.
    # The oldest entry alone settles whether anything goes; the release loop below finds the end
    # of the run while it releases, one comparison per released entry (a step releases one or two).
    after = now_ns - cfg.max_window_ns + 1
    released: tuple[Released, ...] = ()
    if buffer and buffer[0][0] < after:
        first = buffer[0]
        if start < end and first[3] < log[end - 1]:
            # A late-accepted twin time (t == watermark, another stream) can sort before keys
            # already released at that time: keep the memory sorted for the bisect above.
            keys = log[start:end]
            resort = True
        else:
            if type(log) is not list or len(log) != end:
                # The empty default, or an older state stepped again: its window goes into a list
                # of its own first (see SyncState); only the newest state appends to a shared log.
                log = list(log[start:end])
                start, end = 0, len(log)
            keys = log
            resort = False
        out_released = []
        n_out = 0
        for e in buffer:
            if e[0] >= after:
                break
            n_out += 1
            t = e[0]
            out_released.append(e[2])
            records.append(_new_tuple(SyncRecord, (now_ns, e[1], t, _APPLIED)))  # _record, inlined
            keys.append(e[3])
        released = tuple(out_released)
        applied += n_out
        watermark = t  # the last released entry's
        if resort:
            log = sorted(keys)
            start, end = 0, len(log)
        else:
            end += n_out
        memory = cfg.duplicate_memory
        if end - start > memory > 0:
            start = end - memory
        elif memory <= 0:
            start += _forgotten(end - start, memory)
        if start * _FORGET_BATCHES > end - start:
            # Forgotten keys past an eighth of the remembered ones: move the memory to a fresh
            # list, so the log stays within 9/8 of the memory and the copy costs O(1) (8 keys)
            # per released key. Dropping the old list frees its forgotten keys; a batch as large
            # as the memory (256 key tuples and their ints) took ~9 us in one step, the only
            # systematic tail of the synchroniser; an eighth of it ~1 us.
            log = log[start:end]
            start, end = 0, len(log)
        if inserted:
            del buffer[:n_out]
        else:
            buffer = buffer[n_out:]
    new_state = _new_tuple(SyncState, (buffer, log, start, end, watermark, now_ns, applied, late, duplicate,
                                       future, resets))
    return new_state, released, tuple(records)


def _remembered(log: list[tuple[int, str]] | tuple[()], start: int, end: int, key: tuple[int, str]) -> bool:
    i = bisect_left(log, key, start, end)
    return i < end and log[i] == key


def _forgotten(n_keys: int, duplicate_memory: int) -> int:
    """How many of the oldest ``n_keys`` fall out of a memory of ``duplicate_memory`` keys: the
    start index of ``keys[-duplicate_memory:]``, which the memory has always been. sync_step
    handles a positive memory inline; this covers the rest as that slice does (0 keeps every key,
    -k forgets the oldest k). The configured range is 1 and up, but a SyncConfig built in code is
    not range-checked."""
    return slice(-duplicate_memory, None).indices(n_keys)[0]
