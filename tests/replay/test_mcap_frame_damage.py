"""Damage to an MCAP file's frame (magic, Header, DataEnd, summary offsets, Footer) is reported at
the record that holds it, with what is wrong, not where the walk happened to trip over it."""
from __future__ import annotations

import re
import struct

import pytest

from core.messages import WheelSpeed
from runtime.cli import main
from runtime.logs import LogCorruptError, Recorder, read, run_metadata
from runtime.logs.mcap_walk import walk

N_MESSAGES = 200
HEADER_AT = 8  # the Header record follows the 8-byte magic
LIBRARY_AT = HEADER_AT + 9 + 4 + 4  # the library's first byte: past the record head and an empty profile


@pytest.fixture(scope="module")
def log_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("frame") / "run.mcap"
    with Recorder(str(path), run_metadata("s", 1, ""), chunk_size=2048) as rec:
        for i in range(N_MESSAGES):
            rec.write("/sensors/wheel_speed", WheelSpeed(i * 10_000_000, 1.0 + i))
    return path.read_bytes()


def _records(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, opcode, content length) of the file's top-level records, read independently of the
    reader under test."""
    out, pos = [], HEADER_AT
    while True:
        opcode, length = struct.unpack_from("<BQ", data, pos)
        out.append((pos, opcode, length))
        if opcode == 0x02:
            return out
        pos += 9 + length


def _first(data: bytes, opcode: int) -> int:
    return next(pos for pos, op, _ in _records(data) if op == opcode)


def _flip(tmp_path, data: bytes, at: int, xor: int = 0xFF):
    damaged = bytearray(data)
    damaged[at] ^= xor
    path = tmp_path / "damaged.mcap"
    path.write_bytes(bytes(damaged))
    return path


def _error(path) -> LogCorruptError:
    with pytest.raises(LogCorruptError) as info:
        read(path)
    return info.value


def test_the_fixture_has_the_frame_the_tests_rely_on(tmp_path, log_bytes):
    ops = [op for _, op, _ in _records(log_bytes)]
    assert ops[0] == 0x01 and ops[1] == 0x0C and ops[2] == 0x06  # Header, Metadata, first Chunk
    assert 0x0F in ops and 0x0E in ops and ops[-1] == 0x02
    assert read(_flip(tmp_path, log_bytes, 0, 0x00)).recovered == N_MESSAGES


@pytest.mark.parametrize("byte, xor, reason", [
    (HEADER_AT, 0xFF, r"Header record damaged: the record after the magic has opcode 0xfe"),
    (HEADER_AT + 1, 0x80, r"Header record damaged: its length says \d+ bytes, its profile and library fill 21"),
    (HEADER_AT + 1, 0x01, r"Header record damaged: its library declares 13 bytes but only 12 of the record's 20"),
    (HEADER_AT + 9, 0xFF, r"Header record damaged: its profile declares 255 bytes"),
    (HEADER_AT + 13, 0x10, r"Header record damaged: its library declares 29 bytes"),
    (HEADER_AT + 20, 0xFF, r"Header record damaged: its library is not UTF-8"),
])
def test_header_damage_is_named_at_the_header(tmp_path, log_bytes, byte, xor, reason):
    # Before: a flipped opcode or string byte was reported as the data-section CRC at DataEnd, a
    # flipped length as a nonsense record somewhere after the header.
    error = _error(_flip(tmp_path, log_bytes, byte, xor))
    assert error.offset == HEADER_AT, error
    assert re.search(reason, error.reason), error.reason


def test_header_damage_fails_a_plain_read_and_the_cli_says_where(tmp_path, log_bytes, capsys):
    path = _flip(tmp_path, log_bytes, HEADER_AT + 20)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"at byte {HEADER_AT}: Header record damaged: its library is not UTF-8" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # the error and the --salvage hint


@pytest.mark.parametrize("byte, xor", [
    (HEADER_AT, 0xFF),  # its opcode
    (HEADER_AT + 1, 0x80),  # its length, far past the file's end
    (HEADER_AT + 1, 0x01),  # its length, one byte off: the declared end is no record start
    (HEADER_AT + 9, 0xFF),  # the profile's length
    (HEADER_AT + 20, 0xFF),  # a library byte (not UTF-8)
])
def test_salvage_steps_over_a_damaged_header_to_every_message(tmp_path, log_bytes, byte, xor):
    """The Header describes the file and holds no data: a salvage used to recover nothing past it."""
    contents = read(_flip(tmp_path, log_bytes, byte, xor), salvage=True)
    assert contents.damage is not None and contents.damage.offset == HEADER_AT
    assert "Header record damaged" in contents.damage.reason
    assert [m.msg.t_ns for m in contents.messages] == [i * 10_000_000 for i in range(N_MESSAGES)]
    assert contents.metadata["scenario"] == "s"  # the run's metadata record follows the Header


def test_damage_past_a_stepped_over_header_cuts_there_and_names_both(tmp_path, log_bytes):
    damaged = bytearray(log_bytes)
    damaged[HEADER_AT] ^= 0xFF
    chunks = [pos for pos, op, _ in _records(log_bytes) if op == 0x06]
    damaged[chunks[3] + 40] ^= 0xFF  # inside the fourth chunk's compressed data: its CRC fails
    path = tmp_path / "twice.mcap"
    path.write_bytes(bytes(damaged))
    contents = read(path, salvage=True)
    assert contents.damage.offset == chunks[3]
    assert "Header record at byte 8 is damaged" in contents.damage.reason
    kept = [m.msg.t_ns for m in contents.messages]
    assert 0 < len(kept) < N_MESSAGES and kept == [i * 10_000_000 for i in range(len(kept))]


def test_replay_salvage_of_a_log_with_a_damaged_header_says_so(tmp_path, log_bytes, capsys):
    path = _flip(tmp_path, log_bytes, HEADER_AT + 20)
    main(["replay", str(path), "--salvage"])
    err = capsys.readouterr().err
    assert f"salvaged {N_MESSAGES} intact messages after the damaged Header record" in err


@pytest.mark.parametrize("byte", range(8))
def test_a_flipped_magic_byte_is_named_where_it_is(tmp_path, log_bytes, byte):
    error = _error(_flip(tmp_path, log_bytes, byte))
    assert error.offset == byte and "MCAP magic damaged" in error.reason


def test_a_flipped_closing_magic_byte_is_named_where_it_is(tmp_path, log_bytes):
    at = len(log_bytes) - 3
    error = _error(_flip(tmp_path, log_bytes, at))
    assert error.offset == at and "MCAP magic damaged" in error.reason
    assert read(_flip(tmp_path, log_bytes, at), salvage=True).recovered == N_MESSAGES


def test_a_flipped_data_end_opcode_is_found_and_named(tmp_path, log_bytes):
    # Before: the DataEnd taken for some other record, its data CRC never checked: no error at all.
    at = _first(log_bytes, 0x0F)
    for xor in (0x01, 0xFF):
        error = _error(_flip(tmp_path, log_bytes, at, xor))
        assert error.offset == at and "DataEnd record damaged" in error.reason, error


@pytest.mark.parametrize("field, width", [("summary start", 0), ("summary offset start", 8)])
def test_a_damaged_footer_offset_is_named_at_the_footer(tmp_path, log_bytes, field, width):
    # Before: "summary section CRC mismatch" at whatever byte the damaged offset named, or, with a
    # high byte flipped, an OSError from seeking there.
    footer = _first(log_bytes, 0x02)
    for byte in (0, 3, 7):
        error = _error(_flip(tmp_path, log_bytes, footer + 9 + width + byte))
        assert error.offset == footer and f"Footer record damaged: its {field} is byte" in error.reason, error
        assert read(_flip(tmp_path, log_bytes, footer + 9 + width + byte), salvage=True).recovered == N_MESSAGES


def test_a_damaged_footer_opcode_is_named_at_the_footer(tmp_path, log_bytes):
    # Before: "truncated: 8 bytes left" at the closing magic.
    footer = _first(log_bytes, 0x02)
    error = _error(_flip(tmp_path, log_bytes, footer))
    assert error.offset == footer and "Footer record damaged" in error.reason and "0xfd" in error.reason


def test_a_damaged_summary_offset_opcode_is_named_at_that_record(tmp_path, log_bytes):
    first = _first(log_bytes, 0x0E)
    error = _error(_flip(tmp_path, log_bytes, first))
    assert error.offset == first and "SummaryOffset record damaged" in error.reason


def test_a_damaged_length_is_named_at_the_record_that_misled_the_walk(tmp_path, log_bytes):
    # The Metadata record's length grown by 0x8000 bytes: the walk lands inside a chunk. Before, the
    # error named that landing place, a "truncated" record of some random opcode.
    metadata = _first(log_bytes, 0x0C)
    error = _error(_flip(tmp_path, log_bytes, metadata + 2, 0x80))
    assert error.offset == metadata and error.reason.startswith("Metadata record damaged: its length"), error


def test_a_damaged_length_in_a_complete_file_is_not_called_truncation(tmp_path, log_bytes):
    footer = _first(log_bytes, 0x02)
    error = _error(_flip(tmp_path, log_bytes, footer + 4))
    assert error.offset == footer and "truncated" not in error.reason
    assert error.reason.startswith("Footer record damaged: its length says") and "not cut short" in error.reason


def test_every_byte_of_the_frame_is_checked(log_bytes):
    """A sweep over the frame's bytes (the summary's sparsely past each record's head): every flip is
    found as a LogCorruptError (never another exception), named in the magic, the Header, or from
    DataEnd on, where it spares every message."""
    metadata, data_end = _first(log_bytes, 0x0C), _first(log_bytes, 0x0F)
    summary = [at for pos, _, length in _records(log_bytes) if pos >= data_end
               for at in range(pos, pos + 9 + length) if at < pos + 13 or (at - pos) % 11 == 0]
    for at in list(range(metadata)) + summary + list(range(len(log_bytes) - 8, len(log_bytes))):
        for xor in (0x01, 0xFF):
            damaged = bytearray(log_bytes)
            damaged[at] ^= xor
            walked = walk(bytes(damaged))  # the reader's walk, without writing and decoding each copy
            damage = walked.error
            assert damage is not None, f"flip {xor:#x} at byte {at} went unnoticed"
            if at < HEADER_AT:
                assert damage.offset == at, damage
            elif at < metadata:
                named = damage.offset == HEADER_AT and "Header record damaged" in damage.reason
                # A bit flip that leaves the strings UTF-8 (in the library, or its length made one
                # shorter, which a later MCAP's appended field could explain) is caught by the
                # data-section CRC alone, which cannot say where, yet names the Header among the places.
                crc_only = (xor == 0x01 and at >= LIBRARY_AT - 4 and damage.offset == data_end
                            and "the Header at byte 8" in damage.reason)
                assert named or crc_only, (at, xor, damage)
            else:
                assert damage.offset >= data_end and len(walked.messages) == N_MESSAGES, (at, xor, damage)


def test_a_salvage_keeps_every_message_whatever_header_byte_is_damaged(log_bytes):
    """Any single flip in the Header record costs a salvage nothing: it is either stepped over or,
    where the strings still read (a library bit), caught only by the data-section CRC at DataEnd,
    after every message."""
    import io

    from runtime.logs.mcap_walk import walk_file

    metadata = _first(log_bytes, 0x0C)
    for at in range(HEADER_AT, metadata):
        for xor in (0x01, 0x80, 0xFF):
            damaged = bytearray(log_bytes)
            damaged[at] ^= xor
            walked = walk_file(io.BytesIO(bytes(damaged)), step_over_header=True)
            assert walked.error is not None, (at, xor)
            assert len(walked.messages) == N_MESSAGES, (at, xor, walked.error)
