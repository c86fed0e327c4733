"""Damaged logs: truncation and flipped bytes are detected with their offset; salvage keeps the prefix."""
from __future__ import annotations

import io

import numpy as np
import pytest
from mcap.exceptions import McapError
from mcap.stream_reader import StreamReader

from core.messages import LidarScan, WheelSpeed
from runtime.logs import LogCorruptError, Recorder, read, run_metadata

N_SCANS = 24


def _scans() -> list[LidarScan]:
    rng = np.random.default_rng(3)
    n = 2000
    return [LidarScan(i * 100_000_000, "top", rng.normal(size=(n, 3)).astype(np.float32),
                      rng.random(n).astype(np.float32), np.arange(n, dtype=np.int32)) for i in range(N_SCANS)]


@pytest.fixture(scope="module")
def log_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("damage") / "run.mcap"
    # Small chunks (about one scan each) so damage in the middle leaves intact chunks before it.
    with Recorder(str(path), run_metadata("s", 1, ""), chunk_size=32 * 1024) as rec:
        for scan in _scans():
            rec.write("/sensors/lidar/top", scan)
    return path.read_bytes()


def _write(tmp_path, data: bytes):
    path = tmp_path / "damaged.mcap"
    path.write_bytes(data)
    return path


def _assert_prefix(messages) -> None:
    originals = _scans()
    for logged, original in zip(messages, originals):
        assert logged.msg.t_ns == original.t_ns
        assert logged.msg.points.tobytes() == original.points.tobytes()


def test_intact_log_reads_completely(tmp_path, log_bytes):
    contents = read(_write(tmp_path, log_bytes))
    assert contents.damage is None and contents.recovered == N_SCANS
    _assert_prefix(contents.messages)


def test_truncated_at_half(tmp_path, log_bytes):
    half = len(log_bytes) // 2
    path = _write(tmp_path, log_bytes[:half])
    with pytest.raises(LogCorruptError, match=r"at byte \d+: truncated") as info:
        read(path)
    assert 0 < info.value.offset <= half and str(path) in str(info.value)
    contents = read(path, salvage=True)
    assert 0 < contents.recovered < N_SCANS
    assert contents.damage_offset == info.value.offset
    _assert_prefix(contents.messages)


def test_flipped_byte_in_the_middle(tmp_path, log_bytes):
    damaged = bytearray(log_bytes)
    middle = len(damaged) // 2
    damaged[middle] ^= 0x40
    path = _write(tmp_path, bytes(damaged))
    with pytest.raises(LogCorruptError, match="byte") as info:
        read(path)
    assert info.value.offset <= middle  # reported at the damaged chunk (or record), not after it
    contents = read(path, salvage=True)
    assert 0 < contents.recovered < N_SCANS
    _assert_prefix(contents.messages)
    # The official stream reader agrees the file is damaged.
    with pytest.raises((McapError, ValueError, EOFError)):
        for _ in StreamReader(io.BytesIO(bytes(damaged)), validate_crcs=True).records:
            pass


def test_flipped_byte_in_every_region_is_detected(tmp_path, log_bytes):
    # Sweep flips across the whole file: none may pass silently (CRCs cover chunks, the data
    # section and the summary; magic and lengths are checked).
    for position in range(0, len(log_bytes), len(log_bytes) // 97):
        damaged = bytearray(log_bytes)
        damaged[position] ^= 0x01
        contents = read(_write(tmp_path, bytes(damaged)), salvage=True)
        assert contents.damage is not None, f"flip at byte {position} went unnoticed"
        _assert_prefix(contents.messages)


def test_damage_in_summary_keeps_every_message(tmp_path, log_bytes):
    damaged = bytearray(log_bytes)
    damaged[-40] ^= 0xFF  # inside the summary / footer, after every chunk
    contents = read(_write(tmp_path, bytes(damaged)), salvage=True)
    assert contents.damage is not None and contents.recovered == N_SCANS


@pytest.mark.parametrize("data, reason", [
    (b"", "not an MCAP file"),
    (b"PK\x03\x04 zip, not mcap", "not an MCAP file"),
    (b"\x89MCAP0\r\n", "no footer"),
])
def test_not_a_log(tmp_path, data, reason):
    with pytest.raises(LogCorruptError, match=reason):
        read(_write(tmp_path, data))
    assert read(_write(tmp_path, data), salvage=True).recovered == 0


def test_writer_bug_shaped_payload_is_reported_as_damage(tmp_path):
    # A CRC-valid message whose payload does not decode (e.g. a schema clash) must not crash the
    # reader with a protobuf error: it is damage at that message.
    from runtime.logs.mcap_write import McapWriter
    from runtime.logs.codec import LogCodec

    path = tmp_path / "clash.mcap"
    codec = LogCodec()
    with open(path, "wb") as f:
        writer = McapWriter(f, chunk_size=1 << 20, zstd_level=1, library="test")
        schema = writer.add_schema("rtdrive.WheelSpeed", "protobuf", codec.schema_data("rtdrive.WheelSpeed"))
        channel = writer.add_channel("/sensors/wheel_speed", "protobuf", schema, {})
        writer.add_message(channel, 1, 1, 0, codec.encode(WheelSpeed(1, 2.0)).payload)
        writer.add_message(channel, 2, 2, 1, b"\xff\xff\xff")
        writer.finish()
    with pytest.raises(LogCorruptError, match="does not decode"):
        read(path)
    assert read(path, salvage=True).recovered == 1
