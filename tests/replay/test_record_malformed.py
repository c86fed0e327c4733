"""A malformed sensor message (a `corrupt` fault: the payload arrives with the wrong shape) is recorded
as it arrived and replays bit for bit. Before, the recorder raised on it (foxglove PointCloud needs
(N, 3) points, RawImage an (H, W, 3) image, WheelSpeed.speed_mps a float) and the run crashed."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from core.messages import CameraImage, GnssFix, LidarScan, RadarScan, WheelSpeed
from core.validation import well_formed
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.logs import LogCodec, Recorder, read, run_metadata
from runtime.record import EXTRA_TYPES, RunRecorder
from runtime.replay import replay
from runtime.replay_diff import first_difference
from sim.scenario import load_scenario
from sim.sensors.payload import corrupt_shape

SCHEMA_NAME = "rtdrive.MalformedMessage"  # spelled out: old logs name it so whatever the code calls it


def _malformed_samples() -> list[object]:
    rng = np.random.default_rng(7)
    n = 11
    lidar = LidarScan(5, "top", rng.normal(size=(n, 3)).astype(np.float32), rng.random(n).astype(np.float32),
                      rng.integers(0, 100_000_000, n).astype(np.int32))
    camera = CameraImage(6, "front", rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    return [corrupt_shape(lidar), corrupt_shape(camera), corrupt_shape(WheelSpeed(7, 12.5)),
            corrupt_shape(RadarScan(8, "front_radar", *(rng.normal(size=4).astype(np.float32) for _ in range(4)))),
            corrupt_shape(GnssFix(9, np.array([1.0e6, -2.5e5]), 0.8)),
            # Bits a decimal round trip would lose: -0.0, NaN payload, an int beyond float precision.
            WheelSpeed(2**62 + 1, np.array([-0.0, np.nan])),
            LidarScan(10, "", np.float64(-0.0), np.zeros((2, 2, 2), ">f4"), np.zeros(0, np.int32)),
            # A JPEG payload beside pixels, or beside an image of the wrong shape: counted as well
            # formed before, and then the Foxglove image encoder refused it and the recording raised.
            CameraImage(11, "front", rng.integers(0, 256, (2, 3, 3), dtype=np.uint8), b"\xff\xd8jpeg"),
            CameraImage(12, "front", np.zeros((0, 0), np.uint8), b"\xff\xd8jpeg")]


def _assert_same(decoded: object, original: object) -> None:
    assert type(decoded) is type(original)
    for f in dataclasses.fields(original):
        a, b = getattr(original, f.name), getattr(decoded, f.name)
        assert type(b) is type(a), f.name
        if isinstance(a, (np.ndarray, np.generic)):  # numpy scalars too: compared as 0-d arrays
            a, b = np.asarray(a), np.asarray(b)
            assert (b.dtype, b.shape, b.tobytes()) == (a.dtype, a.shape, a.tobytes()), f.name
        else:
            assert b == a, f.name
    assert first_difference(original, decoded) is None


@pytest.mark.parametrize("msg", _malformed_samples(), ids=lambda m: type(m).__name__)
def test_malformed_message_round_trips_exactly(msg):
    assert not well_formed(msg)
    codec = LogCodec()
    encoded = codec.encode(msg)
    assert encoded.schema_name == SCHEMA_NAME
    _assert_same(codec.decode(encoded.schema_name, codec.schema_data(SCHEMA_NAME), encoded.payload, {}), msg)


def test_a_topic_with_well_formed_and_malformed_messages_reads_back_in_order(tmp_path):
    # One topic, two channels (the Foxglove one and the malformed one): the reader keeps write order.
    rng = np.random.default_rng(1)
    good = LidarScan(1, "top", rng.normal(size=(4, 3)).astype(np.float32), np.zeros(4, np.float32),
                     np.zeros(4, np.int32))
    sent = [good, corrupt_shape(dataclasses.replace(good, t_ns=2)), dataclasses.replace(good, t_ns=3),
            corrupt_shape(WheelSpeed(4, 1.0)), WheelSpeed(5, 2.0)]
    path = tmp_path / "mixed.mcap"
    with Recorder(str(path), run_metadata("unit", 0, "")) as rec:
        for msg in sent:
            rec.write("/sensors/wheel" if isinstance(msg, WheelSpeed) else "/sensors/lidar", msg)
    got = read(path, order="file").messages
    assert [m.topic for m in got] == ["/sensors/lidar"] * 3 + ["/sensors/wheel"] * 2
    for m, msg in zip(got, sent):
        _assert_same(m.msg, msg)


def test_a_value_no_kind_holds_is_a_clear_error():
    with pytest.raises(TypeError, match=r"WheelSpeed\.speed_mps.*cannot be logged"):
        LogCodec().encode(WheelSpeed(1, [1.0, 2.0]))


@pytest.mark.parametrize("sensor", ["lidar", "wheel"])
def test_corrupt_sensor_run_records_and_replays_bit_exact(tmp_path, sensor):
    base = load_scenario("lead_brake")
    # Only the faulted sensor and the wheel (which the stack needs) are simulated, to keep it quick.
    scenario = dataclasses.replace(base, sensors=dataclasses.replace(
        base.sensors, enabled=tuple(dict.fromkeys((sensor, "wheel")))))
    path = tmp_path / f"{sensor}.mcap"
    loop = ClosedLoop(scenario, RunOptions(duration_s=1.0, sensors=True, perception="oracle",
                                           faults=(f"{sensor}:corrupt@0.5",)))
    with RunRecorder(loop, path):
        loop.run()
    contents = read(path, order="arrival", extra_types=EXTRA_TYPES)
    malformed = [m for m in contents.messages if m.topic.startswith("/sensors/") and not well_formed(m.msg)]
    # The fault corrupts every message of the sensor from 0.5 s on; each is in the log as it arrived.
    assert malformed and {m.topic for m in malformed} == {f"/sensors/{sensor}"}
    assert min(m.arrival_ns for m in malformed) >= 500_000_000
    report = replay(contents)
    assert report.checked and report.divergence is None and report.outputs_compared > 0
    assert report.replayed_modes == report.recorded_modes
