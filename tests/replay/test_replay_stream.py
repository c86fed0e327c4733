"""Streamed reading and replay: the sensor inputs stay in the file until the replay reaches them,
so memory does not grow with the log; what is read and replayed is exactly what ``read`` gives."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from core.messages import CameraImage, LidarScan
from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.logs import LogCorruptError, Recorder, read, run_metadata, stream
from runtime.record import EXTRA_TYPES, RUN_CHUNK_BYTES, RunRecorder
from runtime.replay import replay
from runtime.replay_diff import first_difference
from sim.scenario import load_scenario

FRAMES, FRAME_BYTES = 80, 600_000  # 48 MB of camera images over the 1 s run


def _same_messages(whole, streamed) -> None:
    """``stream`` holds and streams exactly the messages ``read`` returns, in the same order."""
    kept = list(streamed.resident) + list(streamed.streamed())
    sensors = [m for m in whole.messages if m.topic.startswith("/sensors/")]
    others = [m for m in whole.messages if not m.topic.startswith("/sensors/")]
    assert len(kept) == len(whole.messages) == streamed.recovered
    for a, b in zip(others + sensors, kept):
        assert (a.topic, a.log_time_ns, a.arrival_ns, a.sequence) == (b.topic, b.log_time_ns, b.arrival_ns, b.sequence)
        assert first_difference(a.msg, b.msg) is None
    assert streamed.metadata == whole.metadata and streamed.skipped_topics == whole.skipped_topics
    assert streamed.damage_offset == whole.damage_offset


@pytest.fixture(scope="module")
def camera_heavy_log(tmp_path_factory) -> tuple[Path, int]:
    """A 1 s oracle run with 48 MB of camera frames added, in chunks as a recorded run has them:
    inputs the oracle stack takes no stream for, so the replay reads and counts them, and stays
    bit-exact on the run's own outputs."""
    folder = tmp_path_factory.mktemp("stream")
    run = folder / "run.mcap"
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(duration_s=1.0))
    with RunRecorder(loop, run):
        loop.run()
    contents = read(run, order="file", extra_types=EXTRA_TYPES)
    heavy = folder / "heavy.mcap"
    rng = np.random.default_rng(0)
    frame_t = [i * 1_000_000_000 // FRAMES for i in range(FRAMES)]
    with Recorder(str(heavy), contents.metadata, extra_types=EXTRA_TYPES, viz=False, chunk_size=RUN_CHUNK_BYTES) as rec:
        for m in contents.messages:
            while frame_t and frame_t[0] <= m.arrival_ns:
                t = frame_t.pop(0)
                image = rng.integers(0, 256, size=(FRAME_BYTES // 3000, 1000, 3), dtype=np.uint8)
                rec.write("/sensors/camera", CameraImage(t, "front", image), arrival_ns=t)
            rec.write(m.topic, m.msg, m.log_time_ns, arrival_ns=m.arrival_ns)
    return heavy, FRAMES * FRAME_BYTES


def test_replay_of_a_streamed_log_holds_a_fraction_of_it(camera_heavy_log, capsys):
    path, payload = camera_heavy_log
    tracemalloc.start()
    try:
        report = replay(stream(path, order="arrival", extra_types=EXTRA_TYPES))
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = replay(read(path, order="arrival", extra_types=EXTRA_TYPES))
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.checked and report.divergence is None and report.inputs_ignored == {"/sensors/camera": FRAMES}
    assert (report.outputs, report.outputs_compared, report.inputs_fed) == (
        whole.outputs, whole.outputs_compared, whole.inputs_fed)
    # Read whole, the 48 MB of frames are all in memory at once. Streamed, the peak is a few copies
    # of one frame (file record, decompressed chunk, payload, decoded message), whatever the length.
    assert whole_peak > payload > 8 * streamed_peak and streamed_peak < 10 * FRAME_BYTES, (whole_peak, streamed_peak)
    assert main(["replay", str(path), "--check"]) == 0  # the CLI streams
    assert "check: bit-exact" in capsys.readouterr().out


def test_stream_gives_what_read_gives(camera_heavy_log):
    path, _ = camera_heavy_log
    for order in ("arrival", "log_time", "file"):
        _same_messages(read(path, order=order, extra_types=EXTRA_TYPES),
                       stream(path, order=order, extra_types=EXTRA_TYPES))
    only = stream(path, topics={"/sensors/camera", "/planning/plan"}, extra_types=EXTRA_TYPES)
    assert only.streamed_topics == {"/sensors/camera"} and {m.topic for m in only.resident} == {"/planning/plan"}


def _scans(n: int = 24) -> list[LidarScan]:
    rng = np.random.default_rng(3)
    return [LidarScan(i * 100_000_000, "top", rng.normal(size=(2000, 3)).astype(np.float32),
                      rng.random(2000).astype(np.float32), np.arange(2000, dtype=np.int32)) for i in range(n)]


def test_damaged_logs_stream_like_they_read(tmp_path):
    path = tmp_path / "scans.mcap"
    with Recorder(str(path), run_metadata("s", 1, ""), chunk_size=32 * 1024) as rec:
        for i, scan in enumerate(_scans()):
            rec.write("/sensors/lidar/top", scan)
            rec.write("/sensors/lidar/copy", scan, arrival_ns=scan.t_ns + 1 - 2 * (i % 2))
    data = path.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "flipped": bytes(b ^ (0x40 if i == len(data) // 2 else 0)
                                                                    for i, b in enumerate(data))}
    for name, damaged in cases.items():
        bad = tmp_path / f"{name}.mcap"
        bad.write_bytes(damaged)
        with pytest.raises(LogCorruptError) as whole_error:
            read(bad)
        with pytest.raises(LogCorruptError) as stream_error:
            stream(bad)
        assert str(stream_error.value) == str(whole_error.value), name
        for order in ("arrival", "file"):
            salvaged = stream(bad, salvage=True, order=order)
            assert 0 < salvaged.recovered < 48
            _same_messages(read(bad, salvage=True, order=order), salvaged)
