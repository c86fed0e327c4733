from pathlib import Path

import cv2
import numpy as np
import pytest

from core.messages import CameraImage, LidarScan
from perception.camera_detector import CameraDetectorConfig, camera_contract, camera_detect_step, load_camera_model
from perception.camera_input import CameraGeometry
from perception.contract import ModelContractError
from perception.health import DetectorHealth
from perception.lidar_detector import LidarDetectorConfig, lidar_contract, lidar_detect_step, load_lidar_model
from perception.onnx_model import ModelFileMissingError, ModelLoadError, OnnxModel, SessionOptions

ROOT = Path(__file__).resolve().parents[2]
LIDAR_CFG = LidarDetectorConfig(model_path=str(ROOT / "models" / "lidar_detector.onnx"))
CAMERA_CFG = CameraDetectorConfig(model_path=str(ROOT / "models" / "camera_detector.onnx"))
CPU = SessionOptions(provider="cpu", warmup_runs=1)
GEOM = CameraGeometry(960, 540, 90.0, (1.6, 0.0, 1.45), (0.0, 0.04, 0.0))


@pytest.fixture(scope="module")
def lidar_model():
    return load_lidar_model(LIDAR_CFG, CPU)


def _scan(points, intensity=None):
    points = np.asarray(points, np.float32)
    inten = np.full(len(points), 0.5, np.float32) if intensity is None else np.asarray(intensity, np.float32)
    return LidarScan(0, "lidar", points, inten, np.zeros(len(points), np.int32))


def _car_scan(rng):
    """Flat ground plus the L-shaped view of a 4.6 x 1.9 m car at (12, 3.5): its rear and right side."""
    ground = np.column_stack([rng.uniform(-40, 40, (6000, 2)), rng.normal(0, 0.02, 6000)])
    rear = np.column_stack([np.full(300, 12.0 - 2.3), 3.5 + rng.uniform(-0.95, 0.95, 300), rng.uniform(0.3, 1.5, 300)])
    side = np.column_stack([12.0 + rng.uniform(-2.3, 2.3, 600), np.full(600, 3.5 - 0.95), rng.uniform(0.3, 1.5, 600)])
    return np.concatenate([ground, rear, side])


def test_missing_model_names_the_file_and_the_fallbacks(tmp_path):
    path = tmp_path / "absent.onnx"
    with pytest.raises(ModelFileMissingError) as err:
        OnnxModel(path, lidar_contract(LIDAR_CFG.grid), CPU)
    msg = str(err.value)
    assert str(path) in msg and "--perception classical" in msg and "oracle" in msg


@pytest.mark.parametrize("content", ["truncated", "not_onnx", "empty"])
def test_broken_model_file_names_the_file_the_cause_and_the_fallbacks(tmp_path, content):
    # onnxruntime's own InvalidProtobuf used to escape as a traceback (exit 1).
    path = tmp_path / f"{content}.onnx"
    whole = open(LIDAR_CFG.model_path, "rb").read()
    path.write_bytes({"truncated": whole[:len(whole) // 2], "not_onnx": b"not a model\n", "empty": b""}[content])
    with pytest.raises(ModelLoadError) as err:
        OnnxModel(path, lidar_contract(LIDAR_CFG.grid), CPU)
    msg = str(err.value)
    assert str(path) in msg and "--perception classical" in msg and "\n" not in msg


def test_wrong_model_is_refused_with_expected_and_found_shapes():
    with pytest.raises(ModelContractError) as err:
        OnnxModel(CAMERA_CFG.model_path, lidar_contract(LIDAR_CFG.grid), CPU)
    msg = str(err.value)
    grid = LIDAR_CFG.grid
    assert "expected" in msg and "found" in msg
    assert f"input[1, 3, {grid.rows}, {grid.cols}]" in msg  # expected
    h, w = CAMERA_CFG.input.input_hw(960)
    assert f"input[1, 3, {h}, {w}]" in msg  # found


def test_cpu_provider_is_explicit_and_reported(lidar_model):
    rep = lidar_model.report()
    assert rep["provider"] == "CPUExecutionProvider" and rep["device"] == "cpu" and rep["intra_op_threads"] == 1
    assert lidar_model.session.get_providers() == ["CPUExecutionProvider"]


def test_nan_points_are_removed_counted_and_detections_finite(lidar_model):
    rng = np.random.default_rng(0)
    pts = _car_scan(rng)
    pts[::50] = np.nan
    pts[1::97, 2] = np.inf
    n_bad = int((~np.isfinite(pts).all(axis=1)).sum())
    health, det = lidar_detect_step(DetectorHealth(), _scan(pts), 7, LIDAR_CFG, lidar_model)
    assert health.nonfinite_points_removed == n_bad and health.healthy and health.frames == 1
    assert det.t_ns == 7 and det.source == "lidar" and np.isfinite(det.boxes).all()


def test_network_finds_a_planted_car(lidar_model):
    _, det = lidar_detect_step(DetectorHealth(), _scan(_car_scan(np.random.default_rng(1))), 0, LIDAR_CFG, lidar_model)
    assert len(det) >= 1
    best = det.boxes[np.argmax(det.scores)]
    assert np.hypot(best[0] - 12.0, best[1] - 3.5) < 2.0


def test_empty_and_all_nan_clouds_yield_no_detections(lidar_model):
    health, det = lidar_detect_step(DetectorHealth(), _scan(np.zeros((0, 3))), 0, LIDAR_CFG, lidar_model)
    assert len(det) == 0 and health.healthy
    health, det = lidar_detect_step(health, _scan(np.full((5, 3), np.nan)), 0, LIDAR_CFG, lidar_model)
    assert len(det) == 0 and health.nonfinite_points_removed == 5 and health.frames == 2


class _Raising:
    def run(self, feed):
        raise RuntimeError("device lost")


class _NaN:
    def run(self, feed):
        return [np.full((1, 2, 52, 26), np.nan, np.float32), np.zeros((1, 8, 52, 26), np.float32)]


def test_missing_model_falls_back_to_classical_counted():
    health, det = lidar_detect_step(DetectorHealth(), _scan(_car_scan(np.random.default_rng(2))), 0, LIDAR_CFG, None)
    assert det.source == "lidar_classical" and len(det) == 1
    assert health.fallback_frames == 1 and health.unhealthy_frames == 1 and health.last_reason == "no_model"


def test_exception_and_nonfinite_output_mark_the_frame_unhealthy():
    scan = _scan(_car_scan(np.random.default_rng(3)))
    health, det = lidar_detect_step(DetectorHealth(), scan, 0, LIDAR_CFG, _Raising())
    assert health.exceptions == 1 and not health.healthy and "device lost" in health.last_error
    assert det.source == "lidar_classical"  # the fallback answered
    health, det = lidar_detect_step(health, scan, 0, LIDAR_CFG, _NaN())
    assert health.nonfinite_outputs == 1 and health.unhealthy_frames == 2 and health.fallback_frames == 2


def test_overrun_flags_the_frame_but_keeps_the_detections(lidar_model):
    ticks = iter([0, 50_000_000])  # the fake timer says inference took 50 ms against a 40 ms budget
    scan = _scan(_car_scan(np.random.default_rng(4)))
    health, det = lidar_detect_step(DetectorHealth(), scan, 0, LIDAR_CFG, lidar_model, timer_ns=lambda: next(ticks))
    assert health.overruns == 1 and health.last_reason == "overrun" and det.source == "lidar" and len(det) >= 1


def test_camera_step_on_raw_and_jpeg_images():
    model = load_camera_model(CAMERA_CFG, 960, CPU)
    img = np.full((540, 960, 3), 120, np.uint8)
    cv2.rectangle(img, (430, 300), (530, 370), (40, 40, 200), -1)
    health, det = camera_detect_step(DetectorHealth(), CameraImage(3, "camera", img), 3, CAMERA_CFG, model, GEOM)
    assert health.healthy and det.t_ns == 3 and np.isfinite(det.boxes_px).all()
    ok, buf = cv2.imencode(".jpg", img)
    jpeg = CameraImage(3, "camera", np.zeros((0, 0, 3), np.uint8), buf.tobytes())
    health, det2 = camera_detect_step(health, jpeg, 3, CAMERA_CFG, model, GEOM)
    assert health.frames == 2 and health.healthy and len(det2) == len(det)
    bad = CameraImage(3, "camera", np.zeros((0, 0, 3), np.uint8), b"not a jpeg")
    health, det3 = camera_detect_step(health, bad, 3, CAMERA_CFG, model, GEOM)
    assert health.exceptions == 1 and len(det3) == 0


def test_camera_contract_matches_the_shipped_model():
    model = load_camera_model(CAMERA_CFG, 960, CPU)
    assert model.contract == camera_contract(CAMERA_CFG, 960)


def test_ground_range_from_the_box_bottom():
    geom = CameraGeometry(960, 540, 90.0, (1.6, 0.0, 1.45), (0.0, 0.0, 0.0))  # level camera
    f = geom.focal_px
    # A ground point 20 m ahead of the camera projects 1.45/20 * f below the centre row.
    v = 270.0 + f * 1.45 / 20.0
    rng_m, sigma = geom.range_from_boxes(np.array([[470.0, v - 30, 490.0, v]], np.float32))
    assert rng_m[0] == pytest.approx(20.0, rel=1e-4) and 0 < sigma[0] < 1.0
    above = geom.range_from_boxes(np.array([[470.0, 100, 490.0, 200]], np.float32), max_range_m=150.0)
    assert above[0][0] == 150.0  # a bottom above the horizon never meets the ground


def test_camera_detections_lift_to_the_ground_plane():
    from core.messages import Detections2D
    from perception.camera_detector import camera_to_3d
    geom = CameraGeometry(960, 540, 90.0, (1.6, 0.0, 1.45), (0.0, 0.0, 0.0))
    v = 270.0 + geom.focal_px * 1.45 / 20.0
    boxes = np.array([[470.0, v - 30, 490.0, v], [470.0, 100.0, 490.0, 200.0]], np.float32)
    det2 = Detections2D(9, "camera", boxes, np.zeros(2, np.int16), np.array([0.9, 0.8], np.float32),
                        np.zeros(2, np.float32), np.zeros(2, np.float32))
    det3 = camera_to_3d(det2, geom)
    assert len(det3) == 1 and det3.t_ns == 9  # the box above the horizon is dropped
    assert det3.boxes[0, 0] == pytest.approx(1.6 + 20.0 + 2.3, abs=1e-3) and abs(det3.boxes[0, 1]) < 1e-3


def test_lidar_step_is_deterministic(lidar_model):
    scan = _scan(_car_scan(np.random.default_rng(6)))
    _, a = lidar_detect_step(DetectorHealth(), scan, 0, LIDAR_CFG, lidar_model)
    _, b = lidar_detect_step(DetectorHealth(), scan, 0, LIDAR_CFG, lidar_model)
    assert a.boxes.tobytes() == b.boxes.tobytes() and a.scores.tobytes() == b.scores.tobytes()
    _, c = lidar_detect_step(DetectorHealth(), scan, 0, LIDAR_CFG, None)
    _, d = lidar_detect_step(DetectorHealth(), scan, 0, LIDAR_CFG, None)
    assert c.boxes.tobytes() == d.boxes.tobytes()
