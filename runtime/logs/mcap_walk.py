"""A validating walk over an MCAP file's records, reporting damage with its byte offset.

Our own walk rather than ``mcap.stream_reader``: it knows the offset of every record, so damage is
reported where it is, and it keeps what preceded it. It checks
- every record's length against the bytes that remain (truncation; in a file that still ends with
  the magic, a damaged length: named at the record whose length misled the walk),
- every chunk's uncompressed size and CRC-32 (a flipped byte in a chunk),
- the data-section CRC in DataEnd (damage between chunks, e.g. in a message index),
- the frame (``mcap_frame``): magic, Header, Footer offsets, the summary CRC, the closing magic.
A CRC stored as 0 means "not computed" (MCAP spec) and is not checked.

Messages are kept per chunk: a chunk either passes its CRC and yields all its messages or yields
none, so everything returned is intact. The walk reads one record at a time from a file (a running
CRC stands in for the data section held whole), and can hand each chunk's messages to a sink
instead of keeping them: a reader that streams a long log holds one chunk, not the file.
"""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import zstandard

from runtime.logs.mcap_frame import (MAGIC, OP_CHANNEL, OP_CHUNK, OP_DATA_END, OP_FOOTER, OP_MESSAGE, OP_METADATA,
                                     OP_NAMES, OP_SCHEMA, OP_SUMMARY_OFFSET, RECORD_HEAD, LogCorruptError,
                                     bad_magic, check_footer, check_header, misaligned, op_name)

_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
_MESSAGE_HEAD = struct.Struct("<HIQQ")
_CHUNK_HEAD = struct.Struct("<QQQI")


@dataclass(frozen=True, slots=True)
class RawMessage:
    channel_id: int
    sequence: int
    log_time: int
    publish_time: int
    data: bytes
    offset: int  # byte offset of the record (or of the chunk holding it)


@dataclass(slots=True)
class WalkResult:
    schemas: dict[int, tuple[str, str, bytes]] = field(default_factory=dict)  # id -> name, encoding, data
    channels: dict[int, tuple[int, str, str, dict[str, str]]] = field(default_factory=dict)
    messages: list[RawMessage] = field(default_factory=list)  # in file order
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    error: LogCorruptError | None = None


Sink = Callable[[WalkResult, list[RawMessage]], None]


class _Cursor:
    """Bounds-checked little-endian reads inside one record's content."""

    __slots__ = ("buf", "pos", "end", "base")

    def __init__(self, buf, start: int, end: int, base: int):
        self.buf, self.pos, self.end, self.base = buf, start, end, base

    def take(self, n: int):
        if n < 0 or self.pos + n > self.end:
            raise LogCorruptError(self.base, f"field of {n} bytes runs past its record")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.take(8))[0]

    def string(self) -> str:
        try:
            return bytes(self.take(self.u32())).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogCorruptError(self.base, f"string field is not UTF-8 ({exc})") from exc

    def bytes32(self) -> bytes:
        return bytes(self.take(self.u32()))

    def string_map(self) -> dict[str, str]:
        size = self.u32()
        inner = _Cursor(self.buf, self.pos, self.pos + size, self.base)
        self.take(size)
        out = {}
        while inner.pos < inner.end:
            key = inner.string()
            out[key] = inner.string()
        return out


def _records(buf, start: int, end: int, base: int | None = None):
    """Yield (offset, opcode, content start, content end); raises on a record overrunning ``end``."""
    pos = start
    while pos < end:
        at = pos if base is None else base
        if pos + RECORD_HEAD.size > end:
            raise LogCorruptError(at, f"truncated: {end - pos} bytes left, too few for a record header")
        opcode, length = RECORD_HEAD.unpack_from(buf, pos)
        body = pos + RECORD_HEAD.size
        if length > end - body:
            raise LogCorruptError(at, f"truncated: {op_name(opcode)} record declares "
                                      f"{length} bytes but only {end - body} remain")
        yield pos, opcode, body, body + length
        pos = body + length


def _parse_inner(buf, opcode: int, start: int, end: int, base: int, out: WalkResult,
                 messages: list[RawMessage]) -> None:
    cur = _Cursor(buf, start, end, base)
    if opcode == OP_SCHEMA:
        schema_id = cur.u16()
        name, encoding = cur.string(), cur.string()
        out.schemas[schema_id] = (name, encoding, cur.bytes32())
    elif opcode == OP_CHANNEL:
        channel_id, schema_id = cur.u16(), cur.u16()
        topic, encoding = cur.string(), cur.string()
        out.channels[channel_id] = (schema_id, topic, encoding, cur.string_map())
    elif opcode == OP_MESSAGE:
        channel_id, sequence, log_time, publish_time = _MESSAGE_HEAD.unpack(cur.take(_MESSAGE_HEAD.size))
        if channel_id not in out.channels:
            raise LogCorruptError(base, f"message on unknown channel {channel_id}")
        messages.append(RawMessage(channel_id, sequence, log_time, publish_time, bytes(buf[cur.pos:end]), base))
    elif opcode == OP_METADATA:
        name = cur.string()
        out.metadata[name] = cur.string_map()


def _decompress(compression: str, data, size: int, offset: int) -> bytes:
    try:
        if compression == "zstd":
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        if compression == "lz4":
            import lz4.frame  # optional dependency of mcap, imported only for lz4 logs
            return lz4.frame.decompress(data)
        if compression == "":
            return bytes(data)
    except Exception as exc:  # zstd/lz4 raise their own error types on damaged frames
        raise LogCorruptError(offset, f"chunk does not decompress ({compression}): {exc}") from exc
    raise LogCorruptError(offset, f"chunk compression {compression!r} is not supported")


def _chunk(buf, start: int, end: int, offset: int, out: WalkResult, sink: Sink) -> None:
    cur = _Cursor(buf, start, end, offset)
    _, _, size, crc = _CHUNK_HEAD.unpack(cur.take(_CHUNK_HEAD.size))
    compression = cur.string()
    data = _decompress(compression, cur.take(cur.u64()), size, offset)
    if len(data) != size:
        raise LogCorruptError(offset, f"chunk decompresses to {len(data)} bytes, header says {size}")
    if crc and zlib.crc32(data) != crc:
        raise LogCorruptError(offset, f"chunk CRC mismatch (stored {crc:#010x}, computed {zlib.crc32(data):#010x})")
    staged: list[RawMessage] = []
    for _, opcode, body, body_end in _records(data, 0, len(data), base=offset):
        _parse_inner(data, opcode, body, body_end, offset, out, staged)
    sink(out, staged)


def _keep(out: WalkResult, messages: list[RawMessage]) -> None:
    out.messages.extend(messages)


def walk(buf: bytes) -> WalkResult:
    """Walk a whole MCAP file held in memory; damage is recorded in ``result.error`` (never raised)."""
    return walk_file(io.BytesIO(buf))


def walk_file(f: BinaryIO, sink: Sink = _keep, step_over_header: bool = False) -> WalkResult:
    """Walk an MCAP file record by record from ``f`` (seekable), holding one record at a time.

    ``sink(result, messages)`` receives each intact chunk's messages (or one message outside any
    chunk) as the walk reaches them, with ``result.schemas`` and ``result.channels`` as known so
    far; the default keeps them all in ``result.messages``. Damage is recorded in ``result.error``
    (never raised): every message handed to the sink precedes it, with one exception:
    ``step_over_header`` (a salvage) steps over a damaged Header record, which describes the file
    and holds no data, to the first record after it (``_record_after_header``). The Header's
    damage stays ``result.error``; the walk goes on from there as usual but for the data-section
    CRC, which the damaged bytes break (every chunk has its own)."""
    out = WalkResult()
    try:
        _walk(f, out, sink, step_over_header)
    except LogCorruptError as exc:
        if out.error is not None:  # the Header's, stepped over: the cut is this later damage's place
            exc = LogCorruptError(exc.offset, f"{exc.reason} (and the Header record at byte {out.error.offset} "
                                              f"is damaged: {out.error.reason})")
        out.error = exc
    return out


def read_record_messages(f: BinaryIO, offset: int, channels: dict) -> list[RawMessage]:
    """The messages of the chunk (or message record) at ``offset``, read again after a walk:
    what a reader that keeps only the messages' places needs to decode them later."""
    out = WalkResult(channels=channels)
    f.seek(offset)
    head = f.read(RECORD_HEAD.size)
    if len(head) < RECORD_HEAD.size:
        raise LogCorruptError(offset, "truncated: the file changed since it was walked")
    opcode, length = RECORD_HEAD.unpack(head)
    content = memoryview(f.read(length))
    if len(content) != length:
        raise LogCorruptError(offset, "truncated: the file changed since it was walked")
    found: list[RawMessage] = []
    if opcode == OP_CHUNK:
        _chunk(content, 0, length, offset, out, lambda _out, messages: found.extend(messages))
    else:
        _parse_inner(content, opcode, 0, length, offset, out, found)
    return found


def _record_after_header(f: BinaryIO, size: int) -> int | None:
    """Where the first record after a damaged Header starts, or None when none is found.

    The Header's own length says so unless that length is what was damaged; so the candidates are
    tried in order, that end first, then every byte from the Header's content on: a candidate
    holds a record that may follow a Header (Metadata, Schema, Channel, Message or Chunk) whose
    length ends inside the file, where another MCAP record starts. Two records in a row, not one,
    because a single plausible head turns up by chance within a few kilobytes of string bytes.
    Only the first ``_RESYNC_SPAN`` bytes are searched: an rtdrive log's first Metadata record
    follows its Header directly."""
    f.seek(len(MAGIC))
    window = f.read(RECORD_HEAD.size + _RESYNC_SPAN)
    f.seek(len(MAGIC) + RECORD_HEAD.size)
    candidates = []
    if len(window) >= RECORD_HEAD.size:
        declared_end = len(MAGIC) + RECORD_HEAD.size + RECORD_HEAD.unpack_from(window, 0)[1]
        if declared_end < size:
            candidates.append(declared_end)
    candidates += range(len(MAGIC) + RECORD_HEAD.size, min(size, len(MAGIC) + len(window)))
    for at in candidates:
        second = _plausible_record(f, at, size, _AFTER_HEADER)
        if second is not None and _plausible_record(f, second, size, OP_NAMES) is not None:
            return at
    return None


_AFTER_HEADER = frozenset({OP_METADATA, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK})
_RESYNC_SPAN = 1 << 16  # bytes searched past a damaged Header (its strings are a few dozen)


def _plausible_record(f: BinaryIO, at: int, size: int, opcodes) -> int | None:
    """The end of the record at ``at`` if it has one of ``opcodes`` and fits in the file, else None."""
    if at + RECORD_HEAD.size > size:
        return None
    f.seek(at)
    opcode, length = RECORD_HEAD.unpack(f.read(RECORD_HEAD.size))
    end = at + RECORD_HEAD.size + length
    return end if opcode in opcodes and end <= size else None


def _header_damage(f: BinaryIO, size: int) -> LogCorruptError | None:
    """The damage the walk would report at the Header record (right after the magic), or None."""
    at = len(MAGIC)
    f.seek(at)
    head = f.read(RECORD_HEAD.size)
    if len(head) < RECORD_HEAD.size:
        return None  # too short to hold anything: the walk reports the truncation
    opcode, length = RECORD_HEAD.unpack(head)
    if length > size - at - RECORD_HEAD.size:
        return LogCorruptError(at, f"Header record damaged: its length says {length} bytes but only "
                                   f"{size - at - RECORD_HEAD.size} remain")
    content = memoryview(f.read(length))
    try:
        check_header(f, opcode, content, size)
    except LogCorruptError as exc:
        return exc
    return None


def _walk(f: BinaryIO, out: WalkResult, sink: Sink, step_over_header: bool = False) -> None:
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise bad_magic(magic, 0, "missing MCAP magic: not an MCAP file")
    # A file that still ends with the magic was not cut short: a record running past its end has a
    # damaged length, and saying "truncated" would send the user looking for the wrong cause.
    f.seek(size - len(MAGIC))
    closed = size >= 2 * len(MAGIC) and f.read(len(MAGIC)) == MAGIC
    f.seek(len(MAGIC))
    data_crc = zlib.crc32(magic)  # of every byte before DataEnd, as the DataEnd record stores it
    data_end_seen = False
    summary_start = 0
    first_offset = 0  # of the first SummaryOffset record, where the footer points
    previous: tuple[int, int, int] | None = None  # (offset, opcode, end) of the record before ``pos``
    anchor: tuple[int, int, int] | None = None  # the last record with an MCAP opcode
    stranger: tuple[int, int] | None = None  # the first data-section record with no MCAP opcode
    header_extra = 0  # bytes of the Header past its strings [bytes]
    pos = len(MAGIC)
    header_stepped_over = False
    if step_over_header:
        header_damage = _header_damage(f, size)
        if header_damage is not None:
            restart = _record_after_header(f, size)
            if restart is None:
                raise header_damage
            out.error = header_damage
            header_stepped_over = True
            pos = restart
        f.seek(pos)
    while pos < size:
        if pos + RECORD_HEAD.size > size:
            left = f.read(size - pos)
            if closed and previous is not None:
                if left == MAGIC:
                    raise LogCorruptError(previous[0], "Footer record damaged: the record before the closing "
                                                       f"magic has opcode {previous[1]:#04x}, a Footer's is 0x02")
                raise misaligned(anchor or previous, pos, f"only {size - pos} bytes remain")
            raise LogCorruptError(pos, f"truncated: {size - pos} bytes left, too few for a record header")
        head = f.read(RECORD_HEAD.size)
        opcode, length = RECORD_HEAD.unpack(head)
        body = pos + RECORD_HEAD.size
        if length > size - body:
            name = op_name(opcode)
            # No MCAP opcode and a length past the end: most likely the walk is misaligned, led here
            # by a damaged length of the last true record (a chunk's CRC vouches for its content only).
            if closed and opcode not in OP_NAMES and anchor is not None and anchor[1] != OP_CHUNK:
                raise misaligned(anchor, pos, f"found opcode {opcode:#04x} declaring {length} bytes")
            if closed:
                raise LogCorruptError(pos, f"{name} record damaged: its length says {length} bytes but only "
                                           f"{size - body} remain, and the file is not cut short (it ends "
                                           "with the closing magic)")
            raise LogCorruptError(pos, f"truncated: {name} record declares {length} bytes but only "
                                       f"{size - body} remain")
        content = memoryview(f.read(length))
        end = body + length
        if pos == len(MAGIC):
            header_extra = check_header(f, opcode, content, size)
        elif opcode == OP_CHUNK:
            _chunk(content, 0, length, pos, out, sink)
        elif opcode == OP_DATA_END:
            stored = _Cursor(content, 0, length, pos).u32()
            if stored and data_crc != stored and not header_stepped_over:
                # The CRC cannot say where; a record of no MCAP opcode, or a Header longer than its
                # strings, is the likely place (each is legal alone, so no damage by itself).
                suspect = "" if stranger is None else (f"; the record at byte {stranger[0]} has opcode "
                                                       f"{stranger[1]:#04x}, no MCAP record's")
                if header_extra:
                    suspect += (f"; the Header at byte {len(MAGIC)} holds {header_extra} bytes past its profile "
                                "and library: its library's length is likely damaged")
                raise LogCorruptError(pos, "data section CRC mismatch: damage outside the chunks somewhere in "
                                           f"bytes 0..{pos} (the Header at byte {len(MAGIC)}, the Metadata and "
                                           f"MessageIndex records, or a record's opcode or length){suspect}")
            data_end_seen = True
            summary_start = end
        elif opcode == OP_FOOTER:
            check_footer(f, content, pos, size, summary_start if data_end_seen else None, first_offset)
            return
        elif not data_end_seen:
            if opcode not in OP_NAMES and stranger is None:
                stranger = (pos, opcode)
            staged: list[RawMessage] = []
            _parse_inner(content, opcode, 0, length, pos, out, staged)
            sink(out, staged)
        elif opcode == OP_SUMMARY_OFFSET and not first_offset:
            first_offset = pos
        if not data_end_seen:
            data_crc = zlib.crc32(content, zlib.crc32(head, data_crc))
        previous = (pos, opcode, end)
        if opcode in OP_NAMES:
            anchor = previous
        pos = end
    where = "before DataEnd" if not data_end_seen else f"in the summary (from byte {summary_start})"
    raise LogCorruptError(size, f"truncated: file ends {where}, no footer")
