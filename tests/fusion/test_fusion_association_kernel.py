"""The compiled gating sweep (association._gated_pairs) gives the numpy sweep's pairs, bit for bit.

The reference below is the numpy code the kernel replaced (x-sorted detections, windows found by
searchsorted, a trace-bound coarse gate, the exact 2x2 Mahalanobis gate), kept as the
specification; inputs include NaN and infinite positions, negative and NaN covariance traces,
ties in x and crowds where pairs are contested.
"""
import numpy as np
import pytest

from fusion.association import _contested, _gated_pairs, associate, gate_threshold


def _reference_gated_pairs(x, p, z_xy, r_xy, gate_d2):
    n, m = x.shape[0], z_xy.shape[0]
    p00, p01, p11 = p[:, 0, 0], p[:, 0, 1], p[:, 1, 1]
    r00, r01, r11 = r_xy[:, 0, 0], r_xy[:, 0, 1], r_xy[:, 1, 1]
    tr_p, tr_r = p00 + p11, r00 + r11
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        reach = np.sqrt(gate_d2 * (tr_p + np.fmax.reduce(tr_r)))
        tx, ty, zx_all, zy = x[:, 0], x[:, 1], z_xy[:, 0], z_xy[:, 1]
        order = zx_all.argsort(kind="stable")
        zx = zx_all[order]
        lo = zx.searchsorted(tx - reach, side="left")
        count = zx.searchsorted(tx + reach, side="right") - lo
        ii = np.arange(n).repeat(count)
        jj = order[np.arange(ii.shape[0]) + (lo - (count.cumsum() - count)).repeat(count)]
        e0 = zx_all[jj] - tx[ii]
        e1 = zy[jj] - ty[ii]
        coarse = (e0 * e0 + e1 * e1 <= gate_d2 * (tr_p[ii] + tr_r[jj])).nonzero()[0]
        ii, jj, e0, e1 = ii[coarse], jj[coarse], e0[coarse], e1[coarse]
        a, b, d = p00[ii] + r00[jj], p01[ii] + r01[jj], p11[ii] + r11[jj]
        det = a * d - b * b
        d2 = (d * e0 * e0 - 2.0 * b * e0 * e1 + a * e1 * e1) / det
    ok = (det > 0.0) & (d2 <= gate_d2)
    ii, jj, d2, det = ii[ok], jj[ok], d2[ok], det[ok]
    row_count, col_count = np.bincount(ii, minlength=n), np.bincount(jj, minlength=m)
    contested = bool(ii.size and (row_count.max() > 1 or col_count.max() > 1))
    return ii, jj, d2, det, row_count, col_count, contested


def _spd2(rng, n, scale):
    a = rng.normal(size=(n, 2, 2)) * scale
    return a @ np.swapaxes(a, 1, 2) + 0.01 * np.eye(2)


@pytest.mark.parametrize("seed", range(40))
def test_gated_pairs_equal_the_numpy_sweep(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 60)), int(rng.integers(1, 60))
    spread = float(rng.choice([3.0, 30.0, 300.0]))
    x = rng.uniform(-spread, spread, (n, 4))
    p = np.zeros((n, 4, 4))
    p[:, :2, :2] = _spd2(rng, n, rng.choice([0.1, 1.0, 3.0]))
    z = np.concatenate([x[: min(n, m), :2] + rng.normal(0, 1.0, (min(n, m), 2)),
                        rng.uniform(-spread, spread, (max(m - n, 0), 2))])
    z[rng.random(m) < 0.2, 0] = z[0, 0]  # ties in x: the stable order decides
    r = _spd2(rng, m, rng.choice([0.1, 0.5]))
    if seed % 4 == 1:  # broken inputs: NaN and infinite positions, NaN and negative traces
        z[rng.integers(0, m)] = np.nan
        z[rng.integers(0, m), 0] = np.inf
        x[rng.integers(0, n), 0] = np.nan
        p[rng.integers(0, n), 0, 0] = -1e3
        r[rng.integers(0, m), 1, 1] = np.nan
        p[rng.integers(0, n), 1, 1] = np.nan
    if seed % 4 == 2:  # every detection trace NaN: np.fmax.reduce gives NaN
        r[:, 0, 0] = np.nan
    layouts = (lambda a: a, lambda a: np.ascontiguousarray(a.T).T)
    lay = layouts[seed % 2]
    gate = gate_threshold(0.9999)
    z_xy = np.ascontiguousarray(np.concatenate([z, rng.normal(size=(m, 2))], axis=1))[:, :2]
    order = z_xy[:, 0].argsort(kind="stable")
    got = _gated_pairs(lay(x), lay(p), z_xy, r, order, gate)
    want = _reference_gated_pairs(x, p, z_xy, r, gate)
    for g, w in zip(got[:6], want[:6]):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == np.ascontiguousarray(w).tobytes()
    assert got[6] == want[6]


def test_crowded_association_is_contested_and_resolved():
    rng = np.random.default_rng(5)
    x = np.zeros((6, 4))
    x[:, 0] = np.arange(6) * 0.5
    p = np.tile(np.eye(4), (6, 1, 1))
    z = x[:, :2] + rng.normal(0, 0.1, (6, 2))
    r = np.tile(0.1 * np.eye(2), (6, 1, 1))
    assoc = associate(x, p, z, r, gate_threshold(0.9999))
    assert assoc.n_contested > 0
    assert sorted(assoc.track_idx.tolist()) == list(range(6))
    assert sorted(assoc.det_idx.tolist()) == list(range(6))


@pytest.mark.parametrize("seed", range(30))
def test_contested_components_equal_np_unique(seed):
    # associate's sub-problem: the pairs in conflict, their tracks and detections as np.unique
    # (sorted, with inverse indices) gave them before the kernel replaced it.
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(1, 50)), int(rng.integers(1, 50))
    x = np.zeros((n, 4))
    x[:, :2] = rng.uniform(0, float(rng.choice([2.0, 10.0, 50.0])), (n, 2))
    p = np.tile(np.eye(4), (n, 1, 1))
    z_xy = rng.uniform(0, 10.0, (m, 2))
    r = np.tile(0.2 * np.eye(2), (m, 1, 1))
    order = z_xy[:, 0].argsort(kind="stable")
    ii, jj, _, _, row_count, col_count, contested = _gated_pairs(x, p, z_xy, r, order, gate_threshold(0.9999))
    alone, rows, cols, row_of, col_of = _contested(ii, jj, row_count, col_count)
    want_alone = (row_count[ii] == 1) & (col_count[jj] == 1)
    want_rows, want_row_of = np.unique(ii[~want_alone], return_inverse=True)
    want_cols, want_col_of = np.unique(jj[~want_alone], return_inverse=True)
    for got, want in ((alone, want_alone), (rows, want_rows), (cols, want_cols), (row_of, want_row_of),
                      (col_of, want_col_of)):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert contested == bool((~alone).any())
