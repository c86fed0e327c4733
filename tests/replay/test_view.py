"""`rtdrive view` renders a recorded run to png, gif and mp4 headless."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.record import RunRecorder
from sim.scenario import load_scenario


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("view") / "run.mcap"
    loop = ClosedLoop(load_scenario("cut_in"), RunOptions(duration_s=1.0))
    with RunRecorder(loop, path):
        loop.run()
    return path


def test_png_frame_shows_ego_plan_and_mode(log, tmp_path):
    out = tmp_path / "v.png"
    assert main(["view", str(log), "-o", str(out), "--at", "0.5"]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (620, 960, 3)
    bev = img[30:270]
    assert (bev == 255).all(axis=2).sum() > 50  # the ego box (white)
    assert (np.abs(bev.astype(int) - (60, 230, 60)).sum(axis=2) < 10).sum() > 50  # the plan (green)
    assert (np.abs(img[5, 500].astype(int) - (80, 170, 60)).sum()) < 10  # NOMINAL banner


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animations(log, tmp_path, suffix):
    out = tmp_path / f"v{suffix}"
    assert main(["view", str(log), "-o", str(out), "--fps", "5"]) == 0
    assert out.stat().st_size > 1000
    if suffix == ".mp4":
        cap = cv2.VideoCapture(str(out))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
        cap.release()


def test_bad_requests(log, tmp_path, capsys):
    assert main(["view", str(log), "-o", str(tmp_path / "v.bmp")]) == 2
    assert main(["view", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "v.png")]) == 2
    truncated = tmp_path / "cut.mcap"
    truncated.write_bytes(log.read_bytes()[:1000])
    assert main(["view", str(truncated), "-o", str(tmp_path / "v.png")]) == 2
    assert "byte" in capsys.readouterr().err


@pytest.mark.parametrize("at", ["nan", "inf", "-1", "5"])
def test_frame_time_not_finite_or_outside_the_log_exit_2_naming_the_range(log, tmp_path, capsys, at):
    """--at nan/inf raised a traceback; a time outside the log was clamped to its first or last frame."""
    out = tmp_path / "v.png"
    assert main(["view", str(log), "-o", str(out), "--at", at]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("rtdrive view: error: --at: ")
    assert "not a finite number" in err if at in ("nan", "inf") else "allowed [0.000, 1.000] s" in err
    assert not out.exists()


def test_view_of_a_directory_exit_2(tmp_path, capsys):
    assert main(["view", str(tmp_path), "-o", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(tmp_path) in err


def test_view_of_a_full_stack_run_skips_pixel_boxes_in_the_birds_eye_view(tmp_path):
    """Camera detections (Detections2D) are recorded too; the bird's-eye view must not trip on them."""
    from runtime.cli import main
    log = tmp_path / "onnx.mcap"
    assert main(["sim", "--scenario", "cut_in", "--duration", "1", "--record", str(log), "--json"]) == 0
    out = tmp_path / "frame.png"
    assert main(["view", str(log), "-o", str(out), "--at", "0.9"]) == 0
    assert out.stat().st_size > 10_000


RAW_SENSOR_SCHEMAS = {"foxglove.RawImage", "foxglove.CompressedImage", "foxglove.PointCloud", "rtdrive.RadarScan",
                      "rtdrive.ImuSample", "rtdrive.WheelSpeed", "rtdrive.GnssFix"}


@pytest.fixture(scope="module")
def sensor_log(tmp_path_factory):
    """A run with the simulated sensors recorded (camera, lidar, radar, IMU, wheel, GNSS) beside the
    oracle's detections, which the view draws although they are on a /sensors/ topic."""
    path = tmp_path_factory.mktemp("view_sensors") / "run.mcap"
    loop = ClosedLoop(load_scenario("cut_in"), RunOptions(duration_s=1.0, sensors=True))
    with RunRecorder(loop, path):
        loop.run()
    return path


def _topic_counts(path) -> dict[str, int]:
    from mcap.reader import make_reader
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    return {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}


def test_view_decodes_only_the_topics_it_draws_and_draws_the_same_picture(sensor_log, tmp_path, monkeypatch):
    """The view decoded and held every message, camera images and lidar sweeps included (640 MB for
    a 4 s full-stack run); it now decodes the drawn topics' messages only, and the picture is the
    one it drew from the whole log."""
    import runtime.logs.reader as reader
    import runtime.view as view
    from runtime.logs import read
    from runtime.record import EXTRA_TYPES

    counts = _topic_counts(sensor_log)
    assert {"/sensors/camera", "/sensors/lidar", "/sensors/radar", "/sensors/oracle"} <= set(counts)
    decoded: dict[str, int] = {}

    class CountingCodec(reader.LogCodec):
        def decode(self, schema_name, schema_data, payload, channel_metadata):
            decoded[schema_name] = decoded.get(schema_name, 0) + 1
            return super().decode(schema_name, schema_data, payload, channel_metadata)

    monkeypatch.setattr(reader, "LogCodec", CountingCodec)
    out = tmp_path / "v.png"
    assert main(["view", str(sensor_log), "-o", str(out), "--at", "0.6"]) == 0
    assert not decoded.keys() & RAW_SENSOR_SCHEMAS, decoded
    assert sum(decoded.values()) == sum(n for t, n in counts.items() if view.drawn_topic(t))
    assert decoded["rtdrive.Detections3D"] == counts["/sensors/oracle"]  # the oracle's boxes are drawn
    monkeypatch.undo()

    # The picture before: every message read and kept.
    everything = read(sensor_log, order="arrival", extra_types=EXTRA_TYPES)
    monkeypatch.setattr(view, "drawn_topic", lambda _topic: True)
    before = view.RunView(everything.messages, everything.metadata)
    monkeypatch.undo()
    assert {"/sensors/camera", "/sensors/lidar", "/sensors/radar"} <= set(before.streams)
    drawn = read(sensor_log, order="arrival", topics=view.drawn_topic)
    after = view.RunView(drawn.messages, drawn.metadata)
    assert set(after.streams) == {t for t in before.streams if view.drawn_topic(t)}
    assert not any(t.startswith("/sensors/") and t != "/sensors/oracle" for t in after.streams)
    assert np.array_equal(cv2.imread(str(out)), before.frame(600_000_000))
    for t_ns in view.frame_times(before, 5.0):
        assert np.array_equal(after.frame(int(t_ns)), before.frame(int(t_ns)))


def test_damage_in_a_sensor_chunk_the_view_does_not_decode_is_still_found(sensor_log, tmp_path, capsys):
    """Skipping the raw sensor messages skips their decoding, not the CRC checks of their chunks."""
    data = bytearray(sensor_log.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the middle of the file: nearly all of it is camera and lidar chunks
    damaged = tmp_path / "damaged.mcap"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "v.png"
    assert main(["view", str(damaged), "-o", str(out), "--at", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "corrupt or truncated MCAP log at byte" in err and "--salvage" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["view", str(damaged), "-o", str(out), "--at", "0.1", "--salvage"]) == 0
    assert out.exists()
