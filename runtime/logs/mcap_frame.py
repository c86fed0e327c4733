"""The frame of an MCAP file: magic, record heads, Header and Footer, and how their damage is named.

An MCAP file is ``<magic><Header><data section>[<summary>]<Footer><magic>``. The walk in
``mcap_walk`` checks chunks and CRCs; the checks here name damage to the frame itself at the record
that holds it. Without them a flipped byte in the Header surfaced as the data-section CRC at DataEnd
(or, in its length, as a nonsense record further on), a damaged Footer offset as a summary CRC
mismatch at whatever byte it named (or an OSError from the seek), a damaged Footer opcode as a
truncation at the closing magic, and a damaged DataEnd opcode not at all.
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

MAGIC = b"\x89MCAP0\r\n"
HEADER_OFFSET = len(MAGIC)  # the Header record follows the magic
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_METADATA, OP_SUMMARY_OFFSET, OP_DATA_END = 0x0C, 0x0E, 0x0F
OP_NAMES = {0x01: "Header", 0x02: "Footer", 0x03: "Schema", 0x04: "Channel", 0x05: "Message",
            0x06: "Chunk", 0x07: "MessageIndex", 0x08: "ChunkIndex", 0x09: "Attachment",
            0x0A: "AttachmentIndex", 0x0B: "Statistics", 0x0C: "Metadata", 0x0D: "MetadataIndex",
            0x0E: "SummaryOffset", 0x0F: "DataEnd"}
RECORD_HEAD = struct.Struct("<BQ")  # opcode, content length [bytes]
_U32 = struct.Struct("<I")
_FOOTER = struct.Struct("<QQI")  # summary start, summary offset start [byte offsets], summary CRC
_DATA_END_LEN, _SUMMARY_OFFSET_LEN = 4, 17  # content lengths [bytes] of these fixed-size records


class LogCorruptError(ValueError):
    """A truncated or corrupt MCAP file; ``offset`` is the byte where the damage was found."""

    def __init__(self, offset: int, reason: str, path: str = ""):
        self.offset = offset
        self.reason = reason
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}corrupt or truncated MCAP log at byte {offset}: {reason}")


def op_name(opcode: int) -> str:
    return OP_NAMES.get(opcode, hex(opcode))


def bad_magic(found: bytes, offset: int, otherwise: str) -> LogCorruptError:
    """The error for magic bytes at ``offset`` that differ from MCAP's: a magic off by one or two
    bytes is damage at the first of them, anything else is ``otherwise`` (not an MCAP file)."""
    if len(found) == len(MAGIC):
        differing = [i for i, (a, b) in enumerate(zip(found, MAGIC)) if a != b]
        if len(differing) <= 2:
            return LogCorruptError(offset + differing[0], f"MCAP magic damaged: bytes {offset}..{offset + 7} "
                                                          f"are {found!r}, expected {MAGIC!r}")
    return LogCorruptError(offset, otherwise)


def misaligned(culprit: tuple[int, int, int], pos: int, found: str) -> LogCorruptError:
    """The error for a walk that found no record at ``pos`` in a file that is not cut short: the
    length of ``culprit`` (offset, opcode, end), the last true record, led it astray."""
    offset, opcode, end = culprit
    where = (f"byte {pos}, where no record starts" if end == pos else
             f"byte {end}, and the walk from there finds no record at byte {pos}")
    return LogCorruptError(offset, f"{op_name(opcode)} record damaged: its length "
                                   f"({end - offset - RECORD_HEAD.size} bytes) ends it at {where} ({found})")


def check_header(f: BinaryIO, opcode: int, content, size: int) -> int:
    """The Header record right after the magic (``content``, with ``f`` just past it): its opcode, its
    two strings (profile, library), and a length that ends where a record starts. Returns the number
    of bytes past the strings: no damage alone, a suspect should the data-section CRC fail."""
    at = len(MAGIC)
    if opcode != OP_HEADER:
        raise LogCorruptError(at, f"Header record damaged: the record after the magic has opcode {opcode:#04x}, "
                                  "a Header's is 0x01")
    pos = 0
    for name in ("profile", "library"):
        if len(content) - pos < _U32.size:
            raise LogCorruptError(at, f"Header record damaged: its length ({len(content)} bytes) ends inside "
                                      f"its {name}")
        n = _U32.unpack_from(content, pos)[0]
        pos += _U32.size
        if n > len(content) - pos:
            raise LogCorruptError(at, f"Header record damaged: its {name} declares {n} bytes but only "
                                      f"{len(content) - pos} of the record's {len(content)} remain")
        try:
            bytes(content[pos:pos + n]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogCorruptError(at, f"Header record damaged: its {name} is not UTF-8 ({exc})") from exc
        pos += n
    if pos == len(content):
        return 0
    # A later MCAP version may append fields, so bytes past the strings are no damage by themselves;
    # but when no data-section record can start where the declared length ends, that length is what
    # was damaged.
    after = at + RECORD_HEAD.size + len(content)
    head = f.read(RECORD_HEAD.size)
    f.seek(after)
    if len(head) == RECORD_HEAD.size:
        opcode, length = RECORD_HEAD.unpack(head)
        if opcode in OP_NAMES and opcode not in (OP_HEADER, OP_FOOTER) and length <= size - after - RECORD_HEAD.size:
            return len(content) - pos
    raise LogCorruptError(at, f"Header record damaged: its length says {len(content)} bytes, its profile and "
                              f"library fill {pos}, and no record starts at byte {after} where it would end")


def check_footer(f: BinaryIO, content, pos: int, size: int, summary_start: int | None, first_offset: int) -> None:
    """The Footer at ``pos``: its offsets must point where the walk found the summary
    (``summary_start``, None: no DataEnd was seen) and its first SummaryOffset record (0: none);
    then the summary CRC and the closing magic are checked."""
    end = pos + RECORD_HEAD.size + len(content)
    if len(content) < _FOOTER.size:
        raise LogCorruptError(pos, f"Footer record damaged: {len(content)} bytes, too few for its "
                                   f"{_FOOTER.size} bytes of fields")
    start, offsets_start, crc = _FOOTER.unpack_from(content, 0)
    if summary_start is None:
        # A record of a DataEnd's length ending where the footer says the summary begins is the
        # DataEnd with its opcode damaged, which the walk took for some other record.
        data_end = start - RECORD_HEAD.size - _DATA_END_LEN
        opcode = _opcode_if_length(f, data_end, _DATA_END_LEN, pos)
        if opcode is not None:
            raise LogCorruptError(data_end, f"DataEnd record damaged: the record right before the summary "
                                            f"(byte {start}) has opcode {opcode:#04x}, a DataEnd's is 0x0f")
        raise LogCorruptError(pos, "no DataEnd record before the Footer: the data section must end with one")
    if start and start != summary_start:
        raise LogCorruptError(pos, f"Footer record damaged: its summary start is byte {start}, the summary "
                                   f"begins at byte {summary_start}")
    if offsets_start and offsets_start != first_offset:
        # Pointing before the first SummaryOffset the walk saw, at a record of a SummaryOffset's
        # length: that is the first one, its opcode damaged. Pointing anywhere else: the footer is.
        opcode = (_opcode_if_length(f, offsets_start, _SUMMARY_OFFSET_LEN, pos)
                  if summary_start < offsets_start < (first_offset or pos) else None)
        if opcode is not None:
            raise LogCorruptError(offsets_start, f"SummaryOffset record damaged: the Footer points at it, "
                                                 f"its opcode is {opcode:#04x}, a SummaryOffset's is 0x0e")
        found = f"byte {first_offset}" if first_offset else "none in the summary"
        raise LogCorruptError(pos, f"Footer record damaged: its summary offset start is byte {offsets_start}, "
                                   f"the first SummaryOffset record is at {found}")
    if crc and start and _crc_of(f, start, end - _U32.size) != crc:
        raise LogCorruptError(start, f"summary section CRC mismatch: damage somewhere in bytes {start}..{end - 4} "
                                     f"(the summary and the Footer's fields) or in the CRC itself at byte {end - 4}")
    f.seek(end)
    tail = f.read(len(MAGIC))
    if tail != MAGIC:
        raise bad_magic(tail, end, "file does not end with the MCAP magic after the footer")
    if size > end + len(MAGIC):
        raise LogCorruptError(end + len(MAGIC), f"{size - end - len(MAGIC)} bytes follow the closing magic")


def _opcode_if_length(f: BinaryIO, offset: int, length: int, before: int) -> int | None:
    """The opcode of the record at ``offset`` when it declares ``length`` bytes and ends by ``before``;
    None otherwise."""
    if not len(MAGIC) <= offset <= before - RECORD_HEAD.size - length:
        return None
    f.seek(offset)
    opcode, declared = RECORD_HEAD.unpack(f.read(RECORD_HEAD.size))
    return opcode if declared == length else None


def _crc_of(f: BinaryIO, start: int, end: int, block: int = 1 << 20) -> int:
    """CRC-32 of bytes [start, end) of ``f``, read a block at a time (the file position moves)."""
    crc = 0
    f.seek(start)
    while start < end:
        piece = f.read(min(block, end - start))
        if not piece:
            break
        crc = zlib.crc32(piece, crc)
        start += len(piece)
    return crc
