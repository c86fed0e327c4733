"""Multi-sensor track management: near-face range bias of camera and radar, confirmation by a
trusted source or two sources, merging of duplicate tracks of one object."""
import math

import numpy as np
import pytest

from core.messages import Detections2D
from fusion.sensor_models import CameraModel, RadarModel, extent_along, polar_predict
from fusion.track_merge import duplicates
from fusion.tracker import tracker_step
from fusion.tracker_polar import tracker_step_camera, tracker_step_radar
from fusion.tracker_state import TrackerConfig, TrackerState
from fusion_reference import detections, still_ego

STEP_NS = 50_000_000
CAMERA = CameraModel(fx_px=480.0, cx_px=480.0, mount_x_m=1.6)
RADAR = RadarModel(mount_x_m=3.7)
CAR_M = (4.5, 1.9)


def _camera(t, xy_centre, rng=None, sigma_m=0.3):
    """Camera detections of cars heading +x: bearing of the centre, range to the rear face."""
    d = xy_centre - [CAMERA.mount_x_m, CAMERA.mount_y_m]
    rng_m = np.hypot(d[:, 0], d[:, 1]) - CAMERA.near_face_fraction * 0.5 * CAR_M[0] * np.abs(np.cos(np.arctan2(d[:, 1], d[:, 0]))) \
        - CAMERA.near_face_fraction * 0.5 * CAR_M[1] * np.abs(np.sin(np.arctan2(d[:, 1], d[:, 0])))
    if rng is not None:
        rng_m = rng_m + rng.normal(0.0, sigma_m, rng_m.shape)
    u = CAMERA.cx_px - CAMERA.fx_px * d[:, 1] / d[:, 0]
    m = len(u)
    boxes = np.stack([u - 20, np.full(m, 300.0), u + 20, np.full(m, 360.0)], axis=1)
    return Detections2D(t, "camera", boxes.astype(np.float32), np.zeros(m, np.int16),
                        np.full(m, 0.9, np.float32), rng_m.astype(np.float32), np.full(m, sigma_m, np.float32))


def _radar(t, xy, score=0.9):
    """Radar clusters at ``xy`` (vehicle frame), stationary (zero radial velocity)."""
    return detections(t, xy, source="radar", scores=np.full(len(xy), score))


def test_extent_along_is_the_box_support_function():
    size = np.array([[4.0, 2.0, 1.5]] * 3)
    e = extent_along(np.array([0.0, np.pi / 2, np.pi]), np.zeros(3), size)
    np.testing.assert_allclose(e, [2.0, 1.0, 2.0])


def test_polar_predict_range_offset_shortens_range_only():
    x = np.array([[30.0, 4.0, 1.0, 0.5]])
    h0, jx0, je0 = polar_predict(x, np.zeros(3), np.array([3.7, 0.0]), True)
    h1, jx1, je1 = polar_predict(x, np.zeros(3), np.array([3.7, 0.0]), True, np.array([1.5]))
    np.testing.assert_allclose(h1[:, 0], h0[:, 0] - 1.5)
    np.testing.assert_array_equal(h1[:, 1:], h0[:, 1:])
    np.testing.assert_array_equal(jx1, jx0)


def test_camera_near_face_range_places_the_track_at_the_centre():
    rng = np.random.default_rng(3)
    truth = np.array([[40.0, 0.5]])
    state = TrackerState.empty()
    for k in range(40):
        t = k * STEP_NS
        state, _ = tracker_step(state, detections(t, truth), still_ego(t), t, TrackerConfig()) if k == 0 \
            else tracker_step_camera(state, _camera(t, truth, rng), still_ego(t), t, TrackerConfig(), CAMERA)
    assert len(state) == 1
    # Without the model the track would sit ~1.8 m short (0.8 x half the car length).
    assert abs(state.x[0, 0] - truth[0, 0]) < 0.3, state.x


def test_camera_birth_starts_at_the_centre_not_the_near_face():
    truth = np.array([[30.0, 0.0]])
    state, _ = tracker_step_camera(TrackerState.empty(), _camera(0, truth), still_ego(0), 0,
                                   TrackerConfig(), CAMERA)
    assert len(state) == 1 and abs(state.x[0, 0] - 30.0) < 0.05


def test_camera_alone_never_confirms_a_track():
    cfg = TrackerConfig()
    state = TrackerState.empty()
    ghost = np.array([[40.0, 5.0]])
    for k in range(20):
        t = k * STEP_NS
        state, tracks = tracker_step_camera(state, _camera(t, ghost), still_ego(t), t, cfg, CAMERA)
        assert len(tracks) == 0
    assert len(state) == 1 and not state.confirmed[0]


def test_camera_with_a_second_source_confirms_and_radar_confirms_alone():
    cfg = TrackerConfig()
    car = np.array([[50.0, 0.0]])
    face = car - [RADAR.near_face_fraction * 0.5 * CAR_M[0], 0.0]
    state = TrackerState.empty()
    # The camera births and hits the track; one radar hit corroborates it.
    for k in range(cfg.confirm_hits):
        t = k * STEP_NS
        state, tracks = tracker_step_camera(state, _camera(t, car), still_ego(t), t, cfg, CAMERA)
    assert len(tracks) == 0
    t = cfg.confirm_hits * STEP_NS
    state, tracks = tracker_step_radar(state, _radar(t, face), still_ego(t), t, cfg, RADAR)
    assert len(state) == 1 and len(tracks) == 1
    assert state.source_mask[0] == cfg.source_bit("radar") | cfg.source_bit("camera")
    radar_only = TrackerState.empty()
    for k in range(cfg.confirm_hits):
        t = k * STEP_NS
        radar_only, tracks = tracker_step_radar(radar_only, _radar(t, face), still_ego(t), t, cfg, RADAR)
    assert len(tracks) == 1
    assert abs(radar_only.x[0, 0] - car[0, 0]) < 0.3  # the near-face offset puts it at the centre


def test_duplicates_keeps_the_confirmed_older_track_and_spares_neighbours():
    xy = np.array([[0.0, 0.0], [1.5, 0.2], [0.0, 3.5], [30.0, 0.0], [31.0, 0.0], [32.0, 0.1]])
    size = np.tile([4.5, 1.9, 1.6], (6, 1))
    confirmed = np.array([True, False, True, False, True, False])
    hits = np.array([10, 30, 5, 2, 3, 9])
    ids = np.arange(1, 7)
    dropped, absorbed = duplicates(xy, np.zeros(6), size, confirmed, hits, ids, 0.3)
    # 0 and 1 overlap: confirmed 0 stays. 2 is in the next lane. 3, 4, 5 overlap: 4 is confirmed.
    np.testing.assert_array_equal(dropped, [False, True, False, True, False, True])
    np.testing.assert_array_equal(absorbed, [-1, 0, -1, 4, -1, 4])
    none, _ = duplicates(xy[:1], np.zeros(1), size[:1], confirmed[:1], hits[:1], ids[:1], 0.3)
    assert not none.any()


@pytest.mark.parametrize("xy, yaw, size, margin_m", [
    # boxes wider than long (1 m x 3 m), 1.6 m apart across: each centre inside the other's box
    ([[0.0, 0.0], [0.0, 1.6]], 0.0, [1.0, 3.0, 1.5], 0.3),
    # small boxes at 45 degrees with the largest allowed-range margins: the grown box's corner
    # reaches past its length plus the margin
    ([[0.0, 0.0], [1.7, 0.0]], math.pi / 4, [0.6, 0.6, 1.7], 1.0),
])
def test_duplicates_reach_covers_the_grown_box_diagonal(xy, yaw, size, margin_m):
    # The pair search used to reach only the largest length plus the margin in x and y.
    xy, size = np.array(xy), np.tile(size, (2, 1))
    dropped, absorbed = duplicates(xy, np.full(2, yaw), size, np.ones(2, bool), np.array([5, 1]),
                                   np.array([1, 2]), margin_m)
    np.testing.assert_array_equal(dropped, [False, True])
    np.testing.assert_array_equal(absorbed, [-1, 0])


def test_tracker_merges_a_twin_born_before_the_gate_could_catch_it():
    cfg = TrackerConfig()
    state = TrackerState.empty()
    for k in range(4):
        t = k * STEP_NS
        state, _ = tracker_step(state, detections(t, np.array([[20.0, 0.0]])), still_ego(t), t, cfg)
    # A radar cluster 1.6 m beyond the lidar centre (outside the tight lidar gate) births a twin.
    t = 4 * STEP_NS
    state, _ = tracker_step_radar(state, _radar(t, np.array([[21.6 - 1.35, 0.0]])), still_ego(t), t, cfg,
                                  RadarModel(mount_x_m=3.7, range_sigma_m=0.05, azimuth_sigma_rad=0.001))
    assert len(state) == 1 and state.ids[0] == 1
    assert (state.counters.created, state.counters.merged) == (2, 1)
    assert state.source_mask[0] == cfg.source_bit("lidar") | cfg.source_bit("radar")


def test_near_pairs_sweep_finds_every_close_pair_once():
    from fusion.track_merge import _near_pairs
    rng = np.random.default_rng(31)
    reach = 4.8
    for trial in range(40):
        n = int(rng.integers(2, 80))
        if trial % 2:  # lanes lined up in columns, rows straddled by the lane spacing
            i = np.arange(n)
            xy = np.stack([(i % 10) * 5.0, (i // 10) * 4.7], axis=1) + rng.normal(0, 0.5, (n, 2))
        else:
            xy = rng.normal(0, rng.uniform(2.0, 40.0), (n, 2))
        ii, jj = _near_pairs(xy, reach)
        got = [tuple(sorted(p)) for p in zip(ii.tolist(), jj.tolist())]
        assert len(got) == len(set(got)) and all(a != b for a, b in got)  # each pair once
        d = np.abs(xy[:, None] - xy[None])
        want = {(a, b) for a, b in zip(*np.nonzero((d <= reach).all(axis=2))) if a < b}
        assert want <= set(got)


def test_apart_certificate_never_hides_a_pair_the_sweep_would_find():
    from fusion.track_merge import _apart, _near_pairs
    rng = np.random.default_rng(32)
    certified = 0
    for trial in range(400):
        n = int(rng.integers(2, 60))
        reach = float(rng.uniform(0.5, 8.0))
        i = np.arange(n)
        if trial % 3 == 0:  # lanes lined up in columns (the benchmark's traffic)
            xy = np.stack([(i % 10) * rng.uniform(3.0, 20.0), (i // 10) * rng.uniform(3.0, 15.0)], axis=1)
            xy += rng.normal(0, 0.3, (n, 2))
        elif trial % 3 == 1:  # one pair about a reach apart in both axes, on either side of it
            xy = rng.normal(0, 100.0, (n, 2))
            xy[1] = xy[0] + reach * rng.choice([-1.0, 1.0], 2) * rng.uniform(0.999, 1.001, 2)
        else:
            xy = rng.normal(0, rng.uniform(5.0, 300.0), (n, 2)) + rng.choice([0.0, 1e4])
        if _apart(xy, reach):
            certified += 1
            assert _near_pairs(xy, reach)[0].size == 0
            d = np.abs(xy[:, None] - xy[None]) + np.eye(n)[:, :, None] * 1e9
            assert not (d <= 1.2 * reach).all(axis=2).any()  # the certificate's own margin
    assert certified > 100
    # NaN, non-positive reach, or coordinates beyond exact keys: no certificate, the sweep decides.
    xy = rng.normal(0, 50.0, (10, 2))
    assert _apart(xy, 4.8) and not _apart(xy, 0.0) and not _apart(xy, np.nan)
    xy[3, 1] = np.nan
    assert not _apart(xy, 4.8)
    assert not _apart(rng.normal(0, 50.0, (10, 2)) + 1e6, 4.8)
