"""Read an rtdrive MCAP log back into core dataclasses, validating it on the way.

``read(path)`` raises ``LogCorruptError`` (with the byte offset) on a truncated or corrupt file;
``read(path, salvage=True)`` instead returns the intact messages that precede the damage, with the
damage recorded in ``LogContents.damage``; a damaged Header record (file metadata, no data) is
stepped over, and the messages after it are returned. Display-only companions (``/viz/...``) are skipped, and so
are channels whose schema is not an rtdrive message (a log recorded by another tool may carry them);
their topics are listed in ``skipped_topics``. ``topics`` (a collection of names, or a predicate on a
name) picks the topics to keep before anything is decoded: the others' messages are passed over
undecoded (a reader that draws a few topics never builds a camera image), so a message of another
topic that does not decode is no damage to that read; the file's CRCs are checked all the same.

``stream(path, streamed=...)`` is ``read`` for logs too long to hold: one walk validates the file
and decodes every message (so damage is found, and salvage cuts, exactly where ``read`` does), but
keeps decoded only the messages of the other topics; the streamed topics' messages (camera images,
lidar sweeps: nearly all of a run's bytes) are remembered by their place in the file and decoded
again, in the same order ``read`` would give, as ``LogStream.streamed()`` reaches them, holding a
few chunks at a time. The file is read record by record in both passes, never whole.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.logs.codec import ROLE_KEY, ROLE_VIZ, LogCodec
from runtime.logs.mcap_walk import LogCorruptError, RawMessage, WalkResult, read_record_messages, walk_file
from runtime.logs.recorder import END_METADATA_NAME, METADATA_NAME

ORDERS = ("log_time", "arrival", "file")
_CHUNK_CACHE = 8  # chunks LogStream.streamed() keeps decompressed: the order it reads in is nearly file order


@dataclass(frozen=True, slots=True)
class LogMessage:
    topic: str
    log_time_ns: int  # MCAP log_time: in a run log when the stack saw it (msg.t_ns is the data's stamp)
    arrival_ns: int  # when it became available to the stack (MCAP publish_time)
    sequence: int  # the recorder's write counter
    msg: object  # the core dataclass


@dataclass(frozen=True, slots=True)
class LogContents:
    messages: tuple[LogMessage, ...]
    # The "rtdrive" metadata record, with the keys of the "rtdrive.end" record (complete, end_ns)
    # merged in where the recorder wrote one; empty for a log from another tool.
    metadata: dict[str, str]
    damage: LogCorruptError | None  # None for an intact file
    skipped_topics: tuple[str, ...]

    @property
    def recovered(self) -> int:
        return len(self.messages)

    @property
    def damage_offset(self) -> int | None:
        return None if self.damage is None else self.damage.offset


Topics = Collection[str] | Callable[[str], bool] | None


def read(path: str | Path, salvage: bool = False, *, order: str = "log_time",
         topics: Topics = None, extra_types: Iterable[type] = ()) -> LogContents:
    """All messages of ``path`` decoded, sorted by ``order``.

    order: "log_time" (MCAP log time, then write order), "arrival" (arrival_ns, then write order: the order a
    replay feeds inputs) or "file" (write order). ``topics`` (names, or a predicate on a name) limits the
    result to those topics; the other topics' messages are not decoded.
    """
    walked = _collect(str(path), salvage, order, topics, LogCodec(extra_types), lambda _topic: False)
    return LogContents(walked.resident, walked.metadata, walked.damage, walked.skipped_topics)


def stream(path: str | Path, salvage: bool = False, *, order: str = "log_time",
           topics: Topics = None, extra_types: Iterable[type] = (),
           streamed: Callable[[str], bool] = lambda topic: topic.startswith("/sensors/")) -> "LogStream":
    """``read`` in bounded memory: the messages of the topics ``streamed`` picks stay in the file
    until ``LogStream.streamed()`` yields them; the rest are decoded in ``LogStream.resident``."""
    return _collect(str(path), salvage, order, topics, LogCodec(extra_types), streamed)


class LogStream:
    """A walked log: ``resident`` messages in memory, the streamed ones decoded on demand. Both are
    in ``order``, and together they are exactly the messages ``read`` returns for the same arguments."""

    def __init__(self, path: str, resident: tuple[LogMessage, ...], places: list[tuple[tuple[int, int], int, int, int]],
                 streamed_topics: frozenset[str], metadata: dict[str, str], damage: LogCorruptError | None,
                 skipped: tuple[str, ...], walked: WalkResult, codec: LogCodec, last_arrival_any_ns: int = 0) -> None:
        self.path, self.resident, self.streamed_topics = path, resident, streamed_topics
        # The latest arrival of any message ``read`` would return with no ``topics`` filter, kept or
        # not: where the recording ends even when only some of its topics were asked for.
        self.last_arrival_any_ns = last_arrival_any_ns
        self.metadata, self.damage, self.skipped_topics = metadata, damage, skipped
        self._places, self._walked, self._codec = places, walked, codec

    @property
    def recovered(self) -> int:
        return len(self.resident) + len(self._places)

    @property
    def damage_offset(self) -> int | None:
        return None if self.damage is None else self.damage.offset

    @property
    def last_arrival_ns(self) -> int:
        """The latest arrival time of any message (0 for none), streamed ones included, unread."""
        return max(max((m.arrival_ns for m in self.resident), default=0),
                   max((place[3] for place in self._places), default=0))

    def streamed(self) -> Iterator[LogMessage]:
        """The streamed messages, decoded one at a time, in order (each call starts over).

        A chunk read for one message keeps the chunk's other streamed messages until they are
        yielded (nearly always soon: the order is close to file order); at most ``_CHUNK_CACHE``
        chunks are kept, the least recently used one is read again if needed."""
        pending: dict[int, set[int]] = {}  # chunk offset -> positions of its messages not yielded yet
        for _key, offset, position, _arrival in self._places:
            pending.setdefault(offset, set()).add(position)
        chunks: OrderedDict[int, dict[int, RawMessage]] = OrderedDict()  # offset -> position -> message
        with open(self.path, "rb") as f:
            for _key, offset, position, _arrival in self._places:
                kept = chunks.get(offset)
                if kept is None:
                    raws = read_record_messages(f, offset, self._walked.channels)
                    kept = chunks[offset] = {p: raws[p] for p in pending[offset]}
                    del raws  # the chunk's other messages
                    if len(chunks) > _CHUNK_CACHE:
                        chunks.popitem(last=False)
                chunks.move_to_end(offset)
                raw = kept.pop(position)
                pending[offset].discard(position)
                if not pending[offset]:
                    del chunks[offset], pending[offset]
                topic, name, schema_data, channel_meta = self._channel(raw)
                msg = self._codec.decode(name, schema_data, raw.data, channel_meta)
                yield LogMessage(topic, raw.log_time, raw.publish_time, raw.sequence, msg)

    def _channel(self, raw: RawMessage) -> tuple[str, str, bytes, dict[str, str]]:
        schema_id, topic, _encoding, channel_meta = self._walked.channels[raw.channel_id]
        name, _, schema_data = self._walked.schemas.get(schema_id, ("", "", b""))
        return topic, name, schema_data, channel_meta


class _Collector:
    """The walk's sink: decodes each message as its chunk passes its CRC, keeps the resident ones
    and the places of the streamed ones, and stops keeping at the first message that does not decode."""

    def __init__(self, path: str, order: str, topics: Topics, codec: LogCodec,
                 streamed: Callable[[str], bool]) -> None:
        self.path, self.order, self.codec, self.is_streamed = path, order, codec, streamed
        self.wanted: Callable[[str], bool] | None = (topics if topics is None or callable(topics)
                                                     else frozenset(topics).__contains__)
        self.index = 0  # write order over every message of the file
        self.resident: list[tuple[tuple[int, int], LogMessage]] = []
        self.places: list[tuple[tuple[int, int], int, int, int]] = []  # (key, record offset, position, arrival)
        self.skipped: set[str] = set()
        self.streamed_topics: set[str] = set()
        self.ours: dict[int, bool] = {}  # channel id -> whether its messages decode to ours
        self.last_arrival_any_ns = 0
        self.damage: LogCorruptError | None = None
        self.cause: ValueError | None = None

    def __call__(self, walked: WalkResult, raws: list[RawMessage]) -> None:
        for position, raw in enumerate(raws):
            index = self.index
            self.index += 1
            if self.damage is not None:
                continue  # past a message that does not decode: nothing more is kept
            schema_id, topic, encoding, channel_meta = walked.channels[raw.channel_id]
            if channel_meta.get(ROLE_KEY) == ROLE_VIZ:
                continue
            name, schema_encoding, schema_data = walked.schemas.get(schema_id, ("", "", b""))
            ours = self.ours.get(raw.channel_id)
            if ours is None:
                ours = self.ours[raw.channel_id] = (encoding == "protobuf" and schema_encoding == "protobuf"
                                                    and _is_ours(self.codec, name))
            if ours and raw.publish_time > self.last_arrival_any_ns:
                self.last_arrival_any_ns = raw.publish_time
            if self.wanted is not None and not self.wanted(topic):
                continue  # before decoding: a topic nobody asked for costs no decode
            if not ours:
                self.skipped.add(topic)
                continue
            try:
                msg = self.codec.decode(name, schema_data, raw.data, channel_meta)
            except ValueError as exc:
                # The bytes passed their CRC yet do not decode: a writer bug or a schema clash. Treat it
                # as damage at that message so salvage keeps what came before.
                self.damage = LogCorruptError(raw.offset, f"message on {topic} at log time {raw.log_time} "
                                                          f"does not decode as {name}: {exc}", self.path)
                self.cause = exc
                continue
            key = {"log_time": (raw.log_time, index), "arrival": (raw.publish_time, index),
                   "file": (index, 0)}[self.order]
            if self.is_streamed(topic):
                self.places.append((key, raw.offset, position, raw.publish_time))  # decoded again when streamed
                self.streamed_topics.add(topic)
            else:
                self.resident.append((key, LogMessage(topic, raw.log_time, raw.publish_time, raw.sequence, msg)))


def _collect(path: str, salvage: bool, order: str, topics: Topics, codec: LogCodec,
          streamed: Callable[[str], bool]) -> LogStream:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    collector = _Collector(path, order, topics, codec, streamed)
    with open(path, "rb") as f:
        walked = walk_file(f, collector, step_over_header=salvage)
    damage = walked.error
    if damage is not None:
        damage = LogCorruptError(damage.offset, damage.reason, path)
        if not salvage:
            raise damage
    if collector.damage is not None:
        damage = collector.damage
        if not salvage:
            raise damage from collector.cause
    collector.resident.sort(key=lambda item: item[0])
    collector.places.sort(key=lambda item: item[0])
    metadata = {**walked.metadata.get(METADATA_NAME, {}), **walked.metadata.get(END_METADATA_NAME, {})}
    return LogStream(path, tuple(m for _, m in collector.resident), collector.places,
                     frozenset(collector.streamed_topics), metadata, damage, tuple(sorted(collector.skipped)),
                     walked, codec, collector.last_arrival_any_ns)


def _is_ours(codec: LogCodec, schema_name: str) -> bool:
    try:
        codec.schema_data(schema_name)
    except KeyError:
        return False
    # Foxglove companions (SceneUpdate, FrameTransform, PoseInFrame) are display-only: a log from
    # another tool may use them for other purposes, so only the sensor schemas decode to messages.
    return schema_name not in ("foxglove.SceneUpdate", "foxglove.FrameTransform", "foxglove.PoseInFrame")
