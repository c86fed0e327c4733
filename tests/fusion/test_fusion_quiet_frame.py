"""The quiet-frame kernels give apply_frame's bits on every frame they take, and give up on the rest.

Each frame is applied twice from the same state: through tracker_update as it runs (the quiet
path where the frame is quiet: from the message itself when it is clean, from the screened frame
when rows were rejected) and with both quiet paths switched off (apply_frame alone); the two
states must be equal bit for bit. The frames mix what a quiet frame excludes (births, misses,
deaths, a contested pair, clutter, a merge) with long quiet stretches, under a moving, turning
ego and a source with limited coverage, so both outcomes and every bookkeeping branch occur; some
frames carry a row to reject (a NaN position, an unknown label) or an invalid velocity.
"""
import numpy as np
import pytest

import fusion.tracker as tracker_module
from core.messages import Detections3D, EgoState
from fusion.quiet_frame import _x_order, quiet_cv_frame, quiet_cv_message
from fusion.tracker import tracker_update
from fusion.tracker_state import N_LABELS, SourceModel, TrackerConfig, TrackerState

STEP_NS = 50_000_000
SOURCES = {
    "oracle": SourceModel(0.2, 0.3, 3.1416, 150.0),
    # A forward sector from a mount that is offset and turned: the coverage decides the misses.
    "lidar": SourceModel(0.25, 0.5, 1.2, 60.0, mount_x_m=1.4, mount_yaw_rad=0.1, x_min_m=-52.0,
                         x_max_m=52.0, y_min_m=-26.0, y_max_m=26.0),
}


def _same_bits(a, b):
    for name in TrackerState.__slots__:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, name
            assert np.ascontiguousarray(va).tobytes() == np.ascontiguousarray(vb).tobytes(), name
        else:
            assert va == vb, name


def _frame(rng, t_ns, ego_pose, targets_xy, targets_v, source, drop_prob, clutter):
    """Vehicle-frame boxes of the targets (some dropped) plus clutter, as float32 like a sensor's."""
    c, s = np.cos(ego_pose[2]), np.sin(ego_pose[2])
    d = targets_xy - ego_pose[:2]
    fwd, left = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
    keep = rng.random(len(fwd)) >= drop_prob
    xy = np.stack([fwd, left], axis=1)[keep] + rng.normal(0, 0.2, (keep.sum(), 2))
    v = np.stack([c * targets_v[:, 0] + s * targets_v[:, 1], -s * targets_v[:, 0] + c * targets_v[:, 1]],
                 axis=1)[keep]
    if clutter:
        xy = np.concatenate([xy, rng.uniform(-40, 40, (clutter, 2))])
        v = np.concatenate([v, np.zeros((clutter, 2))])
    m = len(xy)
    boxes = np.zeros((m, 7), np.float32)
    boxes[:, :2] = xy
    boxes[:, 3:6] = (4.5, 1.9, 1.5)
    boxes[:, 6] = rng.normal(0, 0.05, m)
    scores = np.full(m, 0.9, np.float32)
    scores[m - clutter:] = 0.5
    return Detections3D(t_ns, source, boxes, v.astype(np.float32), rng.random(m) < 0.7,
                        rng.integers(0, N_LABELS, m).astype(np.int16), scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quiet_frames_give_apply_frame_bits(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    cfg = TrackerConfig(sources=dict(SOURCES), motion_model="cv")
    n_targets = 6
    targets_xy = np.stack([np.linspace(8, 70, n_targets), rng.choice([-3.5, 0.0, 3.5], n_targets)], axis=1)
    targets_v = np.stack([rng.uniform(5, 20, n_targets), np.zeros(n_targets)], axis=1)
    outcomes = []  # per frame the message path saw: whether it took the frame
    screened_outcomes = []  # the same for the path after the Python screen

    def counted(*args):
        out, screened = quiet_cv_message(*args)
        if screened:
            outcomes.append(out is not None)
        return out, screened

    def counted_screened(*args):
        out = quiet_cv_frame(*args)
        screened_outcomes.append(out is not None)
        return out

    state = TrackerState.empty()
    for k in range(160):
        t = k * STEP_NS
        ego_pose = np.array([15.0 * t * 1e-9, 0.2 * np.sin(t * 1e-9), 0.02 * np.sin(0.5 * t * 1e-9)])
        ego = EgoState(t, ego_pose, 15.0, 0.0, 0.01, np.diag([0.01, 0.01, 1e-4, 0.01, 1e-4]))
        xy = targets_xy + targets_v * t * 1e-9
        if 60 <= k < 64:
            xy[1] = xy[0] + (0.8, 0.3)  # two targets on top of each other: contested, then a merge
        source = "oracle" if k % 2 else "lidar"
        det = _frame(rng, t, ego_pose, xy, targets_v, source, drop_prob=0.15 if k % 20 < 5 else 0.0,
                     clutter=int(k % 37 == 0))
        if k % 7 == 3:  # a row to reject: the frame goes through the Python screen
            row = rng.integers(0, len(det.boxes))
            if k % 2:
                det.boxes[row, 0] = np.nan
            else:
                det.labels[row] = N_LABELS
        if k % 11 == 5:
            det.velocities_mps[rng.integers(0, len(det.boxes)), 1] = np.inf  # only invalidated
        monkeypatch.setattr(tracker_module, "quiet_cv_message", lambda *args: (None, False))
        monkeypatch.setattr(tracker_module, "quiet_cv_frame", lambda *args: None)
        reference = tracker_update(state, det, ego, cfg)  # apply_frame alone
        monkeypatch.setattr(tracker_module, "quiet_cv_message", counted)
        monkeypatch.setattr(tracker_module, "quiet_cv_frame", counted_screened)
        state = tracker_update(state, det, ego, cfg)
        _same_bits(state, reference)
    assert sum(outcomes) > 60 and outcomes.count(False) > 5
    assert sum(screened_outcomes) > 10 and screened_outcomes.count(False) > 1


def test_x_order_is_numpys_stable_argsort():
    """Ties (0.0 and -0.0 among them) keep their row order; NaNs go last."""
    rng = np.random.default_rng(5)
    for k in range(2000):
        m = int(rng.integers(0, 12))
        z = rng.choice([0.0, -0.0, 1.0, -2.5, np.nan, np.inf, -np.inf, rng.normal()], (m, 4))
        assert np.array_equal(_x_order(z), z[:, 0].argsort(kind="stable")), k


def test_the_kernels_log_gives_numpys_bits():
    """The quiet frame's class evidence takes the C library's log in its kernel, apply_frame
    numpy's: the same bits on this host, over the clipped scores and their complements."""
    import math

    from numba import njit

    @njit
    def logs(values):
        out = np.empty_like(values)
        for i in range(values.shape[0]):
            out[i] = math.log(values[i])
        return out

    rng = np.random.default_rng(13)
    s = np.minimum(np.maximum(rng.random(200_000).astype(np.float32).astype(np.float64), 1e-3), 1.0 - 1e-3)
    for values in (s, (1.0 - s) / max(N_LABELS - 1, 1)):
        assert logs(values).tobytes() == np.log(values).tobytes()
