"""Read an rtdrive MCAP log back into core dataclasses, validating it on the way.

``read(path)`` raises ``LogCorruptError`` (with the byte offset) on a truncated or corrupt file;
``read(path, salvage=True)`` instead returns the intact messages that precede the damage, with the
damage recorded in ``LogContents.damage``. Display-only companions (``/viz/...``) are skipped, and so
are channels whose schema is not an rtdrive message (a log recorded by another tool may carry them);
their topics are listed in ``skipped_topics``.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from runtime.logs.codec import ROLE_KEY, ROLE_VIZ, LogCodec
from runtime.logs.mcap_walk import LogCorruptError, walk
from runtime.logs.recorder import END_METADATA_NAME, METADATA_NAME

ORDERS = ("log_time", "arrival", "file")


@dataclass(frozen=True, slots=True)
class LogMessage:
    topic: str
    log_time_ns: int  # the message's t_ns as recorded
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


def read(path: str | Path, salvage: bool = False, *, order: str = "log_time",
         topics: Collection[str] | None = None, extra_types: Iterable[type] = ()) -> LogContents:
    """All messages of ``path`` decoded, sorted by ``order``.

    order: "log_time" (t_ns, then write order), "arrival" (arrival_ns, then write order: the order a
    replay feeds inputs) or "file" (write order). ``topics`` limits the result to those topics.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    path = str(path)
    result = walk(Path(path).read_bytes())
    damage = result.error
    if damage is not None:
        damage = LogCorruptError(damage.offset, damage.reason, path)
        if not salvage:
            raise damage
    codec = LogCodec(extra_types)
    messages: list[tuple[tuple[int, int], LogMessage]] = []
    skipped: set[str] = set()
    for index, raw in enumerate(result.messages):
        schema_id, topic, encoding, channel_meta = result.channels[raw.channel_id]
        if topics is not None and topic not in topics:
            continue
        if channel_meta.get(ROLE_KEY) == ROLE_VIZ:
            continue
        name, schema_encoding, schema_data = result.schemas.get(schema_id, ("", "", b""))
        if encoding != "protobuf" or schema_encoding != "protobuf" or not _is_ours(codec, name):
            skipped.add(topic)
            continue
        try:
            msg = codec.decode(name, schema_data, raw.data, channel_meta)
        except ValueError as exc:
            # The bytes passed their CRC yet do not decode: a writer bug or a schema clash. Treat it
            # as damage at that message so salvage keeps what came before.
            damage = LogCorruptError(raw.offset, f"message on {topic} at log time {raw.log_time} "
                                                 f"does not decode as {name}: {exc}", path)
            if not salvage:
                raise damage from exc
            break
        key = {"log_time": (raw.log_time, index), "arrival": (raw.publish_time, index),
               "file": (index, 0)}[order]
        messages.append((key, LogMessage(topic, raw.log_time, raw.publish_time, raw.sequence, msg)))
    messages.sort(key=lambda item: item[0])
    metadata = {**result.metadata.get(METADATA_NAME, {}), **result.metadata.get(END_METADATA_NAME, {})}
    return LogContents(tuple(m for _, m in messages), metadata, damage, tuple(sorted(skipped)))


def _is_ours(codec: LogCodec, schema_name: str) -> bool:
    try:
        codec.schema_data(schema_name)
    except KeyError:
        return False
    # Foxglove companions (SceneUpdate, FrameTransform, PoseInFrame) are display-only: a log from
    # another tool may use them for other purposes, so only the sensor schemas decode to messages.
    return schema_name not in ("foxglove.SceneUpdate", "foxglove.FrameTransform", "foxglove.PoseInFrame")
