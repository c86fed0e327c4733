"""The compiled hit bookkeeping (fusion/track_hits.hit_rows) against the numpy code it replaced in
tracker.apply_frame, kept here as the specification: the same bits for yaw, size, class evidence
and existence, for hits in track order, permuted, partial and none."""
import numpy as np
import pytest

from fusion.track_hits import hit_rows
from fusion.tracker_state import N_LABELS


def _with_rows(at, old, new_rows):
    if isinstance(at, slice):
        return new_rows
    out = old.copy()
    out[at] = new_rows
    return out


def _row_max(a):
    out = a[:, 0]
    for k in range(1, a.shape[1]):
        out = np.maximum(out, a[:, k])
    return out


def _class_loglik(labels, scores):
    s = np.minimum(np.maximum(scores.astype(np.float64, copy=False), 1e-3), 1.0 - 1e-3)
    out = np.empty((s.shape[0], N_LABELS))
    out[:] = np.log((1.0 - s) / max(N_LABELS - 1, 1))[:, None]
    out[np.arange(s.shape[0]), labels] = np.log(s)
    return out


def _wrap_angle(a):
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def _reference(yaw, size, class_loglik, e, ti, di, det_yaw, det_size, shape_valid, yaw_gain,
               size_gain, labels, scores):
    """apply_frame's numpy form (the existence update as its all-hit branch wrote it; the other
    branch applied the same expression to the miss-updated existence)."""
    n = yaw.shape[0]
    at = slice(None) if ti.shape[0] == n and (ti == np.arange(n)).all() else ti
    dt = slice(None) if di.shape[0] == labels.shape[0] and (di == np.arange(labels.shape[0])).all() else di
    if shape_valid and ti.size:
        yaw_t = yaw[at]
        dyaw = (det_yaw[dt] - yaw_t + 0.5 * np.pi) % np.pi - 0.5 * np.pi
        yaw = _with_rows(at, yaw, _wrap_angle(yaw_t + yaw_gain * dyaw))
        size_t = size[at]
        size = _with_rows(at, size, size_t + size_gain * (det_size[dt] - size_t))
    class_ll = _with_rows(at, class_loglik, class_loglik[at] + _class_loglik(labels[dt], scores[dt]))
    if n:
        class_ll -= _row_max(class_ll)[:, None]
    e = _with_rows(at, e, 1.0 - (1.0 - e[at]) * (1.0 - scores[dt]))
    return yaw, size, class_ll, e


def _kernel(yaw, size, class_loglik, e, ti, di, det_yaw, det_size, shape_valid, yaw_gain, size_gain,
            labels, scores):
    s = np.minimum(np.maximum(scores, 1e-3), 1.0 - 1e-3)
    return hit_rows(yaw, size, class_loglik, e, ti, di, det_yaw, det_size, shape_valid, yaw_gain,
                    size_gain, labels, np.log(s), np.log((1.0 - s) / max(N_LABELS - 1, 1)), scores)


def _bits(a):
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("seed", range(16))
def test_hit_rows_gives_the_numpy_bits(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(0, 60)), int(rng.integers(0, 60))
    yaw = rng.uniform(-np.pi, np.pi, n)
    size = rng.uniform(0.5, 12.0, (n, 3))
    class_loglik = np.log(rng.dirichlet(np.ones(N_LABELS), n))
    class_loglik -= class_loglik.max(axis=1, keepdims=True)
    e = rng.uniform(0.0, 1.0, n)
    k = min(n, m) if seed % 4 == 0 else int(rng.integers(0, min(n, m) + 1))
    ti = np.arange(k) if seed % 4 == 0 else rng.permutation(n)[:k]
    di = np.arange(k) if seed % 2 == 0 else rng.permutation(m)[:k]
    det_yaw = rng.uniform(-7.0, 7.0, m)  # beyond [-pi, pi): the folding and wrapping take any angle
    boxes = rng.uniform(0.5, 12.0, (m, 7))
    det_size = boxes[:, 3:6]  # a strided view, as tracker_step hands it over
    labels = rng.integers(0, N_LABELS, m).astype(np.int64)
    scores = rng.uniform(0.0, 1.0, m)
    scores[rng.random(m) < 0.1] = 1.0  # clipped to 1 - 1e-3 for the evidence
    shape_valid = bool(seed % 3)
    args = (yaw, size, class_loglik, e, ti.astype(np.int64), di.astype(np.int64), det_yaw, det_size,
            shape_valid, 0.3, 0.1, labels, scores)
    got, want = _kernel(*args), _reference(*args)
    for g, w in zip(got, want):
        assert g.shape == w.shape and _bits(g) == _bits(w)


def test_hit_rows_takes_read_only_inputs_and_leaves_them_unchanged():
    # A replayed log hands out read-only arrays (np.frombuffer views).
    rng = np.random.default_rng(3)
    n = 5
    arrays = [rng.uniform(-3, 3, n), rng.uniform(1, 5, (n, 3)), np.zeros((n, N_LABELS)),
              rng.uniform(0, 1, n), np.arange(n), np.arange(n)[::-1].copy(), rng.uniform(-3, 3, n),
              rng.uniform(1, 5, (n, 3)), np.zeros(n, np.int64), rng.uniform(0.1, 0.9, n)]
    before = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    yaw, size, cl, e, ti, di, det_yaw, det_size, labels, scores = arrays
    got = _kernel(yaw, size, cl, e, ti, di, det_yaw, det_size, True, 0.3, 0.1, labels, scores)
    want = _reference(*[a.copy() for a in (yaw, size, cl, e, ti, di, det_yaw, det_size)], True, 0.3, 0.1,
                      labels.copy(), scores.copy())
    assert all(_bits(g) == _bits(w) for g, w in zip(got, want))
    assert all(_bits(a) == _bits(b) for a, b in zip(arrays, before))


def test_a_nan_class_row_stays_nan_as_numpy_maximum_makes_it():
    cl = np.zeros((2, N_LABELS))
    cl[1, 1] = np.nan
    _, _, out, _ = _kernel(np.zeros(2), np.ones((2, 3)), cl, np.full(2, 0.5), np.zeros(0, np.int64),
                           np.zeros(0, np.int64), np.zeros(0), np.ones((0, 3)), True, 0.3, 0.1,
                           np.zeros(0, np.int64), np.zeros(0))
    assert np.isnan(out[1]).all() and (out[0] == 0.0).all()


def test_row_normalisation_takes_numpy_maximums_zero_on_ties():
    # numpy's maximum gives its second operand on a tie, so a row (0.0, -0.0, ...) has maximum -0.0
    # and normalises to (0.0 - -0.0, -0.0 - -0.0, ...) = (+0.0, +0.0, ...).
    cl = np.full((2, N_LABELS), -1.0)
    cl[0, :2] = 0.0, -0.0
    cl[1, :2] = -0.0, 0.0
    args = (np.zeros(2), np.ones((2, 3)), cl, np.full(2, 0.5), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0), np.ones((0, 3)), True, 0.3, 0.1, np.zeros(0, np.int64), np.zeros(0))
    got, want = _kernel(*args), _reference(*args)
    assert all(_bits(g) == _bits(w) for g, w in zip(got, want))
