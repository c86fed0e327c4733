"""A minimal indexed MCAP writer with a chosen zstd level.

Why not ``mcap.writer.Writer``: it compresses every chunk with zstd's default level 3, which alone
caps recording of lidar-heavy runs near 60 MB/s on one core; the recording target is 100 MB/s.
This writer emits the same file layout (chunks, message indexes, DataEnd with data-section CRC,
summary with schemas, channels, statistics, chunk and metadata indexes, summary offsets, footer
with summary CRC), reusing ``mcap.records`` for everything but the hot path (messages and chunks),
which it packs with ``struct`` and writes without intermediate copies.
"""
from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from typing import BinaryIO

import zstandard
from mcap.data_stream import RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (Channel, ChunkIndex, DataEnd, Footer, Header, Metadata, MetadataIndex,
                          MessageIndex, Schema, Statistics, SummaryOffset)

from runtime.logs.mcap_walk import MAGIC

_MESSAGE_HEAD = struct.Struct("<BQHIQQ")  # opcode, record length, channel, sequence, log, publish
_CHUNK_HEAD = struct.Struct("<BQQQQI")  # opcode, record length, start, end, uncompressed size, crc
_FOOTER_PREFIX = struct.Struct("<BQQQ")


class McapWriter:
    def __init__(self, stream: BinaryIO, *, chunk_size: int, zstd_level: int, library: str):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self._stream = stream
        self._chunk_size = chunk_size
        self._compressor = zstandard.ZstdCompressor(level=zstd_level)
        self._crc = 0
        self._offset = 0
        self._schemas: list[Schema] = []
        self._channels: list[Channel] = []
        self._chunk_indexes: list[ChunkIndex] = []
        self._metadata_indexes: list[MetadataIndex] = []
        self._stats = Statistics(attachment_count=0, channel_count=0, channel_message_counts=defaultdict(int),
                                 chunk_count=0, message_count=0, message_end_time=0, message_start_time=0,
                                 metadata_count=0, schema_count=0)
        self._reset_chunk()
        self._emit(MAGIC)
        builder = RecordBuilder()
        Header(profile="", library=library).write(builder)
        self._emit(builder.end())

    def _emit(self, data) -> None:
        self._stream.write(data)
        self._crc = zlib.crc32(data, self._crc)
        self._offset += len(data)

    def _reset_chunk(self) -> None:
        self._parts: list[bytes] = []
        self._chunk_bytes = 0
        self._chunk_start = self._chunk_end = None
        self._index: dict[int, list[tuple[int, int]]] = defaultdict(list)

    # ------------------------------------------------------------------------------------------
    def add_schema(self, name: str, encoding: str, data: bytes) -> int:
        schema = Schema(id=len(self._schemas) + 1, name=name, encoding=encoding, data=data)
        self._schemas.append(schema)
        self._add_to_chunk(schema)
        return schema.id

    def add_channel(self, topic: str, encoding: str, schema_id: int, metadata: dict[str, str]) -> int:
        channel = Channel(id=len(self._channels) + 1, topic=topic, message_encoding=encoding,
                          metadata=metadata, schema_id=schema_id)
        self._channels.append(channel)
        self._add_to_chunk(channel)
        return channel.id

    def _add_to_chunk(self, record) -> None:
        builder = RecordBuilder()
        record.write(builder)
        data = builder.end()
        self._parts.append(data)
        self._chunk_bytes += len(data)

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        self._finish_chunk()  # metadata records live outside chunks
        builder = RecordBuilder()
        Metadata(name=name, metadata=data).write(builder)
        record = builder.end()
        self._metadata_indexes.append(MetadataIndex(offset=self._offset, length=len(record), name=name))
        self._emit(record)
        self._stats.metadata_count += 1

    def add_message(self, channel_id: int, log_time: int, publish_time: int, sequence: int, data: bytes) -> None:
        self._index[channel_id].append((log_time, self._chunk_bytes))
        head = _MESSAGE_HEAD.pack(Opcode.MESSAGE, _MESSAGE_HEAD.size - 9 + len(data), channel_id, sequence,
                                  log_time, publish_time)
        self._parts.append(head)
        self._parts.append(data)
        self._chunk_bytes += len(head) + len(data)
        self._chunk_start = log_time if self._chunk_start is None else min(self._chunk_start, log_time)
        self._chunk_end = log_time if self._chunk_end is None else max(self._chunk_end, log_time)
        stats = self._stats
        stats.message_start_time = log_time if stats.message_count == 0 else min(stats.message_start_time, log_time)
        stats.message_end_time = max(stats.message_end_time, log_time)
        stats.message_count += 1
        stats.channel_message_counts[channel_id] += 1
        if self._chunk_bytes >= self._chunk_size:
            self._finish_chunk()

    def _finish_chunk(self) -> None:
        if not self._parts:
            return
        raw = b"".join(self._parts)
        compressed = self._compressor.compress(raw)
        compression = b"zstd"
        chunk_start = self._offset
        head = _CHUNK_HEAD.pack(Opcode.CHUNK, 8 * 3 + 4 + 4 + len(compression) + 8 + len(compressed),
                                self._chunk_start or 0, self._chunk_end or 0, len(raw), zlib.crc32(raw))
        self._emit(head + struct.pack("<I", len(compression)) + compression + struct.pack("<Q", len(compressed)))
        self._emit(compressed)
        chunk_length = self._offset - chunk_start
        index_start = self._offset
        builder = RecordBuilder()
        offsets = {}
        for channel_id, records in self._index.items():
            offsets[channel_id] = index_start + builder.count
            MessageIndex(channel_id=channel_id, records=records).write(builder)
        self._emit(builder.end())
        self._chunk_indexes.append(ChunkIndex(
            message_start_time=self._chunk_start or 0, message_end_time=self._chunk_end or 0,
            chunk_start_offset=chunk_start, chunk_length=chunk_length, message_index_offsets=offsets,
            message_index_length=self._offset - index_start, compression=compression.decode(),
            compressed_size=len(compressed), uncompressed_size=len(raw)))
        self._stats.chunk_count += 1
        self._reset_chunk()

    # ------------------------------------------------------------------------------------------
    def finish(self) -> None:
        self._finish_chunk()
        builder = RecordBuilder()
        DataEnd(data_section_crc=self._crc).write(builder)
        self._emit(builder.end())
        summary_start = self._offset
        self._stats.schema_count = len(self._schemas)
        self._stats.channel_count = len(self._channels)
        groups = [(Opcode.SCHEMA, self._schemas), (Opcode.CHANNEL, self._channels),
                  (Opcode.STATISTICS, [self._stats]), (Opcode.CHUNK_INDEX, self._chunk_indexes),
                  (Opcode.METADATA_INDEX, self._metadata_indexes)]
        summary = RecordBuilder()
        offsets = []
        for opcode, records in groups:
            group_start = summary.count
            for record in records:
                record.write(summary)
            if summary.count > group_start:
                offsets.append(SummaryOffset(group_opcode=opcode, group_start=summary_start + group_start,
                                             group_length=summary.count - group_start))
        summary_offset_start = summary_start + summary.count
        for offset in offsets:
            offset.write(summary)
        summary_data = summary.end()
        crc = zlib.crc32(summary_data)
        crc = zlib.crc32(_FOOTER_PREFIX.pack(Opcode.FOOTER, 20, summary_start, summary_offset_start), crc)
        self._stream.write(summary_data)
        builder = RecordBuilder()
        Footer(summary_start=summary_start, summary_offset_start=summary_offset_start, summary_crc=crc).write(builder)
        self._stream.write(builder.end())
        self._stream.write(MAGIC)
        self._stream.flush()
