"""valid_rows: the clean-frame check (compiled for the message dtypes, whole-array sums for any
other) never changes the answer of the exact per-row screen."""
import numpy as np
import pytest

from core.messages import Detections3D
from fusion.detection_screen import valid_rows
from fusion.tracker_state import N_LABELS


def _exact(d):
    """The per-row screen alone (valid_rows' answer for a frame that is not clean)."""
    vel_valid = d.velocity_valid.astype(bool)
    finite = np.isfinite(d.boxes[:, [0, 1, 3, 4, 5, 6]]).all(axis=1) & np.isfinite(d.scores)
    label_ok = (d.labels >= 0) & (d.labels < N_LABELS)
    vel_finite = np.isfinite(d.velocities_mps).all(axis=1)
    keep = finite & label_ok
    return (keep, vel_valid & vel_finite, int((~finite).sum()), int((finite & ~label_ok).sum()),
            int((keep & vel_valid & ~vel_finite).sum()))


@pytest.mark.parametrize("float_dtype,label_dtype", [(np.float32, np.int16), (np.float64, np.int64)])
@pytest.mark.parametrize("seed", range(4))
def test_valid_rows_gives_the_exact_screen(float_dtype, label_dtype, seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        m = int(rng.integers(1, 6))
        boxes = rng.normal(0, 10, (m, 7)).astype(float_dtype)
        vel = rng.normal(0, 5, (m, 2)).astype(float_dtype)
        scores = rng.uniform(0, 1, m).astype(float_dtype)
        labels = rng.integers(0, N_LABELS, m).astype(label_dtype)
        kind = rng.integers(0, 6)
        i = int(rng.integers(0, m))
        bad = rng.choice([np.nan, np.inf, -np.inf])
        if kind == 1:
            boxes[i, rng.integers(0, 7)] = bad  # column 2 (z) included: kept, but not clean
        elif kind == 2:
            vel[i, rng.integers(0, 2)] = bad
        elif kind == 3:
            scores[i] = bad
        elif kind == 4:
            labels[i] = rng.choice([-1, N_LABELS])
        d = Detections3D(0, "lidar", boxes, vel, rng.random(m) < 0.5, labels, scores)
        got, want = valid_rows(d), _exact(d)
        assert np.array_equal(got[0], want[0]) and got[0].dtype == want[0].dtype
        assert np.array_equal(got[1], want[1]) and got[2:] == want[2:]
