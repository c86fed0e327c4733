"""Round trip of every message type through an MCAP file, and readability with the plain mcap reader."""
from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

from core.messages import (CameraImage, ControlCommand, Detections2D, Detections3D, EgoState, GnssFix,
                           ImuSample, LidarScan, Mode, ModeLimits, Plan, RadarScan, SafetyStatus,
                           StageTiming, Tracks, WheelSpeed)
from runtime.logs import LogCodec, Recorder, default_topic, read, run_metadata
from runtime.logs.codec import core_message_types
from runtime.logs.dataclass_proto import DataclassProtoSchema
from sim.truth import ActorsTruth, EgoTruth


def _samples() -> list[object]:
    rng = np.random.default_rng(42)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    n = 257
    return [
        CameraImage(10, "front", rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)),
        CameraImage(11, "rear", np.zeros((0, 0, 3), np.uint8), b"\xff\xd8fakejpeg\xff\xd9"),
        LidarScan(12, "top", f32(n, 3), rng.random(n).astype(np.float32),
                  rng.integers(0, 100_000_000, n).astype(np.int32)),
        LidarScan(13, "top", f32(0, 3), f32(0), np.zeros(0, np.int32)),
        RadarScan(14, "front_radar", f32(5), f32(5), f32(5), f32(5)),
        ImuSample(15, np.array([0.1, -0.0, 9.81]), -0.0),
        WheelSpeed(16, 12.5),
        GnssFix(17, np.array([1.0e6, -2.5e5]), 0.8),
        Detections3D(18, "lidar", f32(4, 7), f32(4, 2), np.array([True, False, True, False]),
                     np.array([0, 1, 0, 7], np.int16), f32(4)),
        Detections3D.empty(19, "radar"),
        Detections2D(20, "camera_front", f32(3, 4), np.array([0, 1, 1], np.int16), f32(3), f32(3), f32(3)),
        EgoState(21, np.array([3.0, 4.0, math.pi]), 10.0, float("nan"), 0.02, rng.normal(size=(5, 5))),
        Tracks(22, np.array([1, 2**40], np.int64), rng.normal(size=(2, 4)), rng.normal(size=(2, 4, 4)),
               rng.normal(size=2), np.abs(rng.normal(size=(2, 3))), np.array([0, 1], np.int16), rng.random(2)),
        Tracks.empty(23),
        Plan(24, np.linspace(0, 3, 31), rng.normal(size=(31, 2)), f32(31).astype(np.float64), rng.random(31),
             rng.normal(size=31), rng.normal(size=31), emergency=True, behaviour="follow"),
        ControlCommand(25, -2.0, 0.05, -1, hazard=True),
        SafetyStatus(26, Mode.MINIMAL_RISK, "lidar stale", ModeLimits(float("inf"), 2.5, False, 3.0, True),
                     {"lidar/top": False, "camera/front": True}),
        StageTiming("planning", 27, 20, 850_000, 1_000_000, False),
        EgoTruth(28, np.array([1.0, 2.0, 0.1]), np.array([2.4, 2.1]), 10.0, 0.5, 0.01, 0.02, 4.6, 1.9, 1.5),
        ActorsTruth(29, np.array([7], np.int64), np.ones((1, 2)), np.zeros(1), np.ones(1), np.zeros(1),
                    np.full(1, 4.5), np.full(1, 1.8), np.full(1, 1.5), np.array([0], np.int16),
                    np.array([[10, 20, 30]], np.uint8)),
    ]


def _assert_same(a: object, b: object, where: str = "") -> None:
    """Bit-exact equality: arrays by dtype, shape and bytes; floats by their IEEE bits."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: array contents differ"
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a.items()) == list(b.items()), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("logs") / "all.mcap"
    samples = _samples()
    with Recorder(str(path), run_metadata("cut_in", 7, "[sim]\nrate_hz = 10\n", "deadbeef")) as rec:
        for msg in samples:
            rec.write(default_topic(msg), msg, arrival_ns=msg.t_ns + 5)
    return path, samples


def test_every_core_message_type_is_sampled():
    sampled = {type(m) for m in _samples()}
    assert set(core_message_types()) <= sampled
    assert {EgoTruth, ActorsTruth} <= sampled


def test_round_trip_is_bit_exact(recorded):
    path, samples = recorded
    contents = read(path)
    assert contents.damage is None and contents.skipped_topics == ()
    assert contents.recovered == len(samples)
    for original, logged in zip(samples, contents.messages):
        assert logged.topic == default_topic(original)
        assert logged.log_time_ns == original.t_ns and logged.arrival_ns == original.t_ns + 5
        _assert_same(original, logged.msg, type(original).__name__)


def test_metadata_record_present(recorded):
    contents = read(recorded[0])
    assert contents.metadata["scenario"] == "cut_in" and contents.metadata["seed"] == "7"
    assert contents.metadata["config_toml"] == "[sim]\nrate_hz = 10\n"
    assert contents.metadata["git_revision"] == "deadbeef" and contents.metadata["rtdrive_version"]


def test_plain_mcap_reader_lists_foxglove_schemas_and_decodes(recorded):
    path, samples = recorded
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        names = {s.name for s in summary.schemas.values()}
        assert {"foxglove.RawImage", "foxglove.CompressedImage", "foxglove.PointCloud", "foxglove.SceneUpdate",
                "foxglove.FrameTransform", "foxglove.PoseInFrame", "rtdrive.Tracks", "rtdrive.SafetyStatus"} <= names
        decoded = {ch.topic: m for _, ch, _, m in reader.iter_decoded_messages()}
        metadata = {r.name: r.metadata for r in reader.iter_metadata()}
    assert metadata["rtdrive"]["scenario"] == "cut_in"
    cloud = decoded["/sensors/lidar/top"]
    assert [fld.name for fld in cloud.fields] == ["x", "y", "z", "intensity", "time_offset_ns"]
    assert len(decoded["/viz/fusion/tracks"].entities[0].cubes) == 0  # the last Tracks written is empty
    assert decoded["/viz/localization/ego/tf"].child_frame_id == "vehicle"
    assert decoded["/safety/status"].reason == "lidar stale"
    assert summary.statistics.message_count > len(samples)  # the viz companions are there too


def test_arrival_order_reproduces_input_order(tmp_path):
    path = tmp_path / "order.mcap"
    early, late = WheelSpeed(100, 1.0), WheelSpeed(50, 2.0)  # the older sample arrives later
    with Recorder(str(path), run_metadata("s", 1, "")) as rec:
        rec.write("/sensors/wheel_speed", early, arrival_ns=120)
        rec.write("/sensors/wheel_speed", late, arrival_ns=130)
    assert [m.msg.t_ns for m in read(path).messages] == [50, 100]
    assert [m.msg.t_ns for m in read(path, order="arrival").messages] == [100, 50]
    assert [m.sequence for m in read(path, order="file").messages] == [0, 1]


def test_extra_types_round_trip(tmp_path):
    @dataclass(frozen=True, slots=True)
    class SyncDecision:
        t_ns: int
        stream: str
        accepted: bool
        lag_ns: int
        sample_t_ns: np.ndarray

    decision = SyncDecision(5, "lidar/top", False, 12_000, np.array([1, 2], np.int64))
    path = tmp_path / "sync.mcap"
    with Recorder(str(path), run_metadata("s", 1, ""), extra_types=[SyncDecision]) as rec:
        rec.write("/sync/decisions", decision)
    assert read(path).skipped_topics == ("/sync/decisions",)  # unknown to a reader without the type
    _assert_same(decision, read(path, extra_types=[SyncDecision]).messages[0].msg)


def test_decodes_with_the_schema_stored_in_an_older_log():
    @dataclass(frozen=True, slots=True)
    class WheelSpeed:  # an older layout: same name, fields in another order, one extra field
        note: str
        speed_mps: float
        t_ns: int

    old = DataclassProtoSchema([WheelSpeed])
    payload = old.encode(WheelSpeed("legacy", 3.5, 9))
    msg = LogCodec().decode("rtdrive.WheelSpeed", old.file_descriptor_set, payload, {})
    _assert_same(msg, __import__("core.messages", fromlist=["WheelSpeed"]).WheelSpeed(9, 3.5))


# Messages of the wrong shape (core.validation.well_formed False: a CameraImage not (H, W, 3) uint8 or
# with pixels beside a JPEG payload, a LidarScan whose arrays disagree) are no longer refused: they
# are recorded as they arrived, in rtdrive.MalformedMessage (tests/replay/test_record_malformed.py).
# What no schema can hold still is.
@pytest.mark.parametrize("bad, error", [
    (LidarScan(1, "l", np.zeros((3, 3), bool), np.zeros(3, np.float32), np.zeros(3, np.int32)), ValueError),
    (WheelSpeed(1, [1.0]), TypeError),
    (GnssFix(1, [1.0, 2.0], 1.0), TypeError),
    (ImuSample(1, np.array([object()]), 0.0), TypeError),
    (ControlCommand(2**63, 0.0, 0.0, -1), ValueError),
])
def test_bad_messages_are_rejected(bad, error):
    with pytest.raises(error):
        LogCodec().encode(bad)


def test_recorder_rejects_bad_use(tmp_path):
    with pytest.raises(ValueError, match="config_toml"):
        Recorder(str(tmp_path / "a.mcap"), {"scenario": "s", "seed": 1})
    with Recorder(str(tmp_path / "b.mcap"), run_metadata("s", 1, "")) as rec:
        rec.write("/sensors/wheel_speed", WheelSpeed(1, 1.0))
        with pytest.raises(TypeError, match="carries WheelSpeed"):
            rec.write("/sensors/wheel_speed", GnssFix(2, np.zeros(2), 1.0))
        with pytest.raises(ValueError, match="log_time_ns"):
            rec.write("/sensors/wheel_speed", WheelSpeed(-5, 1.0))
        with pytest.raises(ValueError, match="start with"):
            rec.write("wheel", WheelSpeed(1, 1.0))
    with pytest.raises(RuntimeError):
        rec.write("/sensors/wheel_speed", WheelSpeed(3, 1.0))
    assert read(tmp_path / "b.mcap").recovered == 1
    with pytest.raises(ValueError, match="order"):
        read(tmp_path / "b.mcap", order="random")
