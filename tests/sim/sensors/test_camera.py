import dataclasses

import cv2
import numpy as np
import pytest

from sim.sensors.camera import CameraModel
from sim.sensors.config import CameraConfig
from sim.sensors.frames import to_vehicle_frame
from tests.sim.sensors.conftest import make_actors, make_ego, random_traffic

FLAT = CameraConfig(pitch_rad=0.0, noise_sigma=0.0, exposure_sigma=0.0)


def render(cfg, road, actors, seed=0, noise_scale=1.0):
    cam = CameraModel(cfg, road, noise_seed=7)
    ego = make_ego()
    return cam, cam.render(123, ego, to_vehicle_frame(ego, actors), np.random.default_rng(seed), noise_scale)


def expected_rear_face(cfg, x_face, y_c=0.0, half_w=0.9, top=1.5):
    f = 0.5 * cfg.width_px / np.tan(np.radians(0.5 * cfg.hfov_deg))
    depth = x_face - cfg.x_m
    cx, cy = 0.5 * cfg.width_px, 0.5 * cfg.height_px
    return np.array([cx - f * (y_c - cfg.y_m + half_w) / depth, cy - f * (top - cfg.z_m) / depth,
                     cx - f * (y_c - cfg.y_m - half_w) / depth, cy + f * cfg.z_m / depth])


def test_box_projects_to_expected_rectangle(road):
    actors = make_actors([[20.0, 0.0]], colors=[[0, 0, 200]])
    _, (img, truth) = render(FLAT, road, actors)
    assert img.t_ns == 123 and img.image.shape == (540, 960, 3) and img.image.dtype == np.uint8
    want = expected_rear_face(FLAT, 20.0 - 2.25)
    np.testing.assert_allclose(truth.boxes_px[0], want, atol=0.5)
    assert truth.ids.tolist() == [100] and truth.visibility[0] > 0.97
    u0, v0, u1, v1 = want
    # The body below the rear window: the box colour, shaded (no blue, strongly red); just outside
    # the right edge: not it.
    inner = img.image[int(v1 - 0.4 * (v1 - v0)):int(v1) - 3, int(u0) + 3:int(u1) - 3].reshape(-1, 3).astype(int)
    assert (inner[:, 2] > 80).all() and (inner[:, 0] < 10).all()
    assert img.image[int(0.5 * (v0 + v1)), int(u1) + 3, 2] < 150


def test_extrinsics_shift_the_image(road):
    actors = make_actors([[20.0, 0.0]])
    moved = dataclasses.replace(FLAT, y_m=0.5)  # still inside the box's width: no side face shows
    _, (_, t0) = render(FLAT, road, actors)
    _, (_, t1) = render(moved, road, actors)
    f = 480.0
    shift = f * 0.5 / (17.75 - FLAT.x_m)  # camera 0.5 m to the left: the scene moves right
    np.testing.assert_allclose(t1.boxes_px[0, [0, 2]] - t0.boxes_px[0, [0, 2]], shift, atol=0.5)
    np.testing.assert_allclose(t1.boxes_px[0], expected_rear_face(moved, 17.75), atol=0.5)


def test_occlusion_and_visibility(road):
    hidden = make_actors([[20.0, 0.0], [40.0, 0.0]], size=[[4.5, 1.8, 1.5], [4.5, 1.8, 1.4]])
    _, (_, truth) = render(FLAT, road, hidden)
    assert truth.ids.tolist() == [100]  # the far, lower box is completely behind the near one
    half = make_actors([[20.0, 0.0], [40.0, 1.8]], size=[[4.5, 1.8, 1.5], [4.5, 1.8, 1.4]])
    _, (_, truth) = render(FLAT, road, half)
    vis = dict(zip(truth.ids.tolist(), truth.visibility.tolist()))
    assert vis[100] > 0.97 and 0.3 < vis[101] < 0.75


def test_behind_and_out_of_range_are_not_labelled(road):
    actors = make_actors([[-20.0, 0.0], [400.0, 0.0]])
    _, (_, truth) = render(FLAT, road, actors)
    assert len(truth.ids) == 0 and truth.boxes_px.shape == (0, 4)


def test_noise_scales_and_is_deterministic(road):
    cfg = CameraConfig()
    actors = random_traffic(30, seed=3)
    _, (a, _) = render(cfg, road, actors, seed=5)
    _, (b, _) = render(cfg, road, actors, seed=5)
    _, (quiet, _) = render(dataclasses.replace(cfg, noise_sigma=0.0, exposure_sigma=0.0), road, actors)
    _, (loud, _) = render(dataclasses.replace(cfg, exposure_sigma=0.0), road, actors, noise_scale=5.0)
    assert np.array_equal(a.image, b.image)
    base = quiet.image.astype(float)
    assert np.std(loud.image.astype(float) - base) > 3.0 * np.std(a.image.astype(float) - base) * 0.5
    assert np.std(loud.image.astype(float) - base) > 10.0


def test_jpeg_payload_decodes(road):
    cfg = dataclasses.replace(FLAT, jpeg=True)
    _, (img, _) = render(cfg, road, make_actors([[20.0, 0.0]]))
    assert img.image.shape == (0, 0, 3) and img.jpeg[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(img.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (540, 960, 3)


def test_no_actors_renders_road(road):
    _, (img, truth) = render(FLAT, road, make_actors(np.zeros((0, 2))))
    assert len(truth.ids) == 0
    bottom = img.image[-5, 480].astype(int)
    assert abs(bottom[0] - bottom[2]) < 20  # grey asphalt under the camera, not grass or sky


def test_partially_behind_camera_is_clipped(road):
    # A long truck alongside: its rear is behind the camera, its front in view.
    actors = make_actors([[3.0, 3.5]], size=(16.0, 2.5, 3.5))
    _, (_, truth) = render(FLAT, road, actors)
    assert truth.ids.tolist() == [100]
    box = truth.boxes_px[0]
    assert np.all(np.isfinite(box)) and box[0] == 0.0 and box[2] > 100.0 and box[3] == 540.0
    assert truth.visibility[0] > 0.95  # truncated by the border, but nothing occludes it
