"""The compiled Kalman kernels give the bits of the numpy block algebra they replaced.

The references below are that numpy code, kept here as the specification: same operations, same
order, so the comparisons are exact (bit patterns, -0.0 and NaN included), on random inputs
salted with zeros of both signs, and in the layouts the tracker passes (N-major views of
component-major arrays) and plain C order.
"""
import numpy as np
import pytest

from fusion import kalman, kalman_kernels


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _spd(rng, n, dim):
    a = rng.normal(size=(n, dim, dim))
    return a @ np.swapaxes(a, -1, -2) + np.eye(dim) * 0.1


def _salted(rng, a):
    """``a`` with some entries replaced by +0.0 and -0.0 (sign rules of sums and products)."""
    a = a.copy()
    flat = a.reshape(-1)
    pick = rng.random(flat.shape[0])
    flat[pick < 0.05] = 0.0
    flat[pick > 0.95] = -0.0
    return a


def _component_major_view(a):
    """``a`` (N, ...) as the tracker holds it: an N-major view of a component-major copy."""
    axes = tuple(range(1, a.ndim)) + (0,)
    inverse = (a.ndim - 1,) + tuple(range(a.ndim - 1))
    return np.ascontiguousarray(a.transpose(axes)).transpose(inverse)


def _reference_cv_predict(x, p, dt_s, q):
    xt = x.T.copy()
    xt[:2] += dt_s * xt[2:]
    pt = p.transpose(1, 2, 0).copy()
    pt[:2] += dt_s * pt[2:]
    pt[:, :2] += dt_s * pt[:, 2:]
    pt += q[:, :, None]
    return xt, pt


def _reference_update_leading(x, p, z, r):
    m = z.shape[-1]
    pt = p.transpose(1, 2, 0)
    n = pt.shape[0]
    rows = np.empty((m, m + n + 1, pt.shape[2]))
    np.add(pt[:m, :m], r.transpose(1, 2, 0), out=rows[:, :m])
    rows[:, m:m + n] = pt[:m]
    np.subtract(z.T, x.T[:m], out=rows[:, m + n])
    with np.errstate(invalid="ignore"):
        for k in range(m):
            row = rows[k, k:]
            for j in range(k):
                row -= rows[j, k] * rows[j, k:]
            row /= np.sqrt(row[0])
    wp, v = rows[:, m:m + n], rows[:, m + n]
    x_new = x.T + (wp * v[:, None]).sum(axis=0)
    p_new = pt - (wp[:, :, None] * wp[:, None, :]).sum(axis=0)
    return x_new, p_new


def _reference_symmetrised_checked(p, floor):
    with np.errstate(all="ignore"):  # overflow and NaN: the cases under test
        pt = np.ascontiguousarray(p.transpose(1, 2, 0))
        sym = pt + pt.transpose(1, 0, 2)
        sym *= 0.5
        broken = ~np.isfinite(sym).all(axis=(0, 1))
        a = sym[:4, :4] - floor * np.eye(4)[:, :, None]
        b = a[0, 0] * a[1:, 1:] - a[0, 1:, None] * a[0, None, 1:]
        c = b[0, 0] * b[1:, 1:] - b[0, 1:, None] * b[0, None, 1:]
        d33 = c[0, 0] * c[1, 1] - c[0, 1] * c[0, 1]
        pivots_ok = bool(np.minimum(np.minimum(a[0, 0], b[0, 0]), np.minimum(c[0, 0], d33)).min() > 0.0)
    return sym, broken, pivots_ok


@pytest.mark.parametrize("layout", [np.ascontiguousarray, _component_major_view])
def test_cv_predict_rows_gives_the_block_algebra_bits(layout):
    rng = np.random.default_rng(21)
    n = 120
    x = _salted(rng, rng.normal(size=(n, 4)) * 30)
    p = _salted(rng, _spd(rng, n, 4))
    for dt_s in (0.0, 0.02, 0.1371):
        q = kalman.cv_process_noise(dt_s, 2.0)
        xt, pt = kalman_kernels.cv_predict_rows(layout(x), layout(p), dt_s, q)
        x_ref, p_ref = _reference_cv_predict(x, p, dt_s, q)
        _same_bits(xt, x_ref)
        _same_bits(pt, p_ref)
    empty = kalman_kernels.cv_predict_rows(x[:0], p[:0], 0.1, q)
    assert empty[0].shape == (4, 0) and empty[1].shape == (4, 4, 0)


@pytest.mark.parametrize("layout", [np.ascontiguousarray, _component_major_view])
def test_cv_predicted_tracks_gives_cv_predict_bits_in_c_order(layout):
    rng = np.random.default_rng(23)
    n = 120
    x = _salted(rng, rng.normal(size=(n, 4)) * 30)
    p = _salted(rng, _spd(rng, n, 4))
    for dt_s in (0.0, 0.02, 0.1371, 1e-9):
        for psd in (2.0, 0.37):
            xo, po = kalman.cv_predicted_tracks(layout(x), layout(p), dt_s, psd)
            x_ref, p_ref = kalman.cv_predict(x, p, dt_s, psd)
            assert xo.flags.c_contiguous and po.flags.c_contiguous
            _same_bits(xo, x_ref)
            _same_bits(po, p_ref)


@pytest.mark.parametrize("layout", [np.ascontiguousarray, _component_major_view])
def test_cv_track_output_gives_the_confirmed_prediction_numpy_argmax_labels_and_copies(layout):
    rng = np.random.default_rng(29)
    n, n_labels = 60, 5
    x = _salted(rng, rng.normal(size=(n, 4)) * 30)
    p = _salted(rng, _spd(rng, n, 4))
    # Class rows with ties (the first maximum wins), NaNs (the first NaN wins) and -0.0 against 0.0.
    ll = rng.integers(-3, 1, size=(n, n_labels)).astype(np.float64)
    ll[::7, 2] = np.nan
    ll[::11, 4] = np.nan
    ll[::5, 0] = -0.0
    ids, yaw, size, existence = rng.integers(0, 10**6, n), rng.normal(size=n), rng.random((n, 3)), rng.random(n)
    for dt_s in (0.02, 0.1371):
        for confirmed in (rng.random(n) < 0.7, np.ones(n, bool), np.zeros(n, bool)):
            out = kalman.cv_track_output(layout(x), layout(p), dt_s, 2.0, ll, confirmed, ids, yaw, size, existence)
            xo, po, labels, ids_o, yaw_o, size_o, existence_o = out
            x_ref, p_ref = kalman.cv_predicted_tracks(x, p, dt_s, 2.0)
            _same_bits(xo, x_ref[confirmed])
            _same_bits(po, p_ref[confirmed])
            assert labels.dtype == np.int16
            assert np.array_equal(labels, ll.argmax(axis=1).astype(np.int16)[confirmed])
            for got, want in zip((ids_o, yaw_o, size_o, existence_o), (ids, yaw, size, existence)):
                assert got.dtype == want.dtype and got.flags.c_contiguous
                _same_bits(got, want[confirmed])


@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("n_state", [4, 5])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, _component_major_view])
def test_update_leading_rows_gives_the_row_cholesky_bits(m, n_state, layout):
    rng = np.random.default_rng(22 + m + n_state)
    n = 150
    x = _salted(rng, rng.normal(size=(n, n_state)) * 10)
    p = _spd(rng, n, n_state)
    # Strongly correlated position and velocity, as a tracker's covariances are.
    p[:50] += 50.0 * np.einsum("ni,nj->nij", *(2 * [rng.normal(size=(50, n_state))]))
    p = _salted(rng, p)
    z = _salted(rng, rng.normal(size=(n, m)) * 10)
    r = _spd(rng, n, m)
    z[:10] = x[:10, :m]  # zero innovations: sums of signed zeros
    r[-3] = -p[-3, :m, :m] - np.eye(m)  # S = -I, indefinite: NaN, as numpy gives
    xt, pt = kalman_kernels.update_leading_rows(layout(x), layout(p), layout(z), layout(r))
    x_ref, p_ref = _reference_update_leading(x, p, z, r)
    _same_bits(xt, x_ref)
    _same_bits(pt, p_ref)
    assert np.isnan(xt[:, -3]).all()


def test_update_leading_rows_takes_gathered_and_sliced_inputs():
    # The tracker's mixed-velocity frames pass gathers (x[t_sel]) and slices (z[sel, :2]).
    rng = np.random.default_rng(23)
    n = 40
    x, p = rng.normal(size=(n, 4)), _spd(rng, n, 4)
    z, r = rng.normal(size=(n, 4)), _spd(rng, n, 4)
    sel = rng.random(n) < 0.5
    xt, pt = kalman_kernels.update_leading_rows(x[sel], p[sel], z[sel, :2], r[sel, :2, :2])
    x_ref, p_ref = _reference_update_leading(x[sel], p[sel], z[sel, :2].copy(), r[sel, :2, :2].copy())
    _same_bits(xt, x_ref)
    _same_bits(pt, p_ref)


@pytest.mark.parametrize("seed", range(12))
def test_update_leading_at_gives_the_gathered_update_bits(seed):
    # A partial frame: some tracks hit, in any order, some with a velocity and some without. The
    # reference is the numpy gather / update / scatter the kernel replaced.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    k = int(rng.integers(0, n + 1))
    x, p = _salted(rng, rng.normal(size=(n, 4))), _spd(rng, n, 4)
    if seed % 2:
        x, p = _component_major_view(x), _component_major_view(p)
    track_idx = rng.permutation(n)[:k].astype(np.int64)
    z, r = rng.normal(size=(k, 4)), _spd(rng, k, 4)
    valid = rng.random(k) < [0.0, 0.5, 1.0][seed % 3]
    if seed % 4 == 3 and k:
        z[0, 0] = np.nan  # a NaN measurement poisons its own track only
    x_ref, p_ref = x.copy(), p.copy()
    for dim, sel in ((2, ~valid), (4, valid)):
        if sel.any():
            t = track_idx[sel]
            xt, pt = _reference_update_leading(x[t], p[t], z[sel, :dim].copy(), r[sel, :dim, :dim].copy())
            x_ref[t], p_ref[t] = xt.T, pt.transpose(2, 0, 1)
    x_new, p_new = kalman.update_leading_at(x, p, track_idx, z, r, valid)
    _same_bits(x_new, x_ref)
    _same_bits(p_new, p_ref)
    assert not np.shares_memory(x_new, x) and not np.shares_memory(p_new, p)


@pytest.mark.parametrize("n_state", [4, 5, 6])
def test_symmetrised_checked_gives_the_reference_bits_and_decision(n_state):
    rng = np.random.default_rng(24 + n_state)
    base = _spd(rng, 300, n_state) * rng.uniform(1e-6, 1e2, (300, 1, 1))
    w, v = np.linalg.eigh(base)
    # Smallest eigenvalue spread across the floor: well above, just above, just below, negative.
    w[:, 0] = kalman.MIN_EIGENVALUE * np.repeat([1e6, 1.5, 0.5, -1e3], 75)
    clean = np.einsum("nij,nj,nkj->nik", v, w, v)
    assert kalman_kernels.symmetrised_checked(clean[:75], kalman.MIN_EIGENVALUE)[2]
    if n_state == 4:  # larger matrices: only their leading 4x4 block is tested
        assert not kalman_kernels.symmetrised_checked(clean[225:], kalman.MIN_EIGENVALUE)[2]
    p = clean.copy()
    p += 1e-12 * rng.normal(size=p.shape)  # slightly asymmetric, as round-off leaves it
    p = _salted(rng, p)
    for batch in (p[:75], p[75:150], p[150:225], p[225:], p):
        for layout in (np.ascontiguousarray, _component_major_view):
            got = kalman_kernels.symmetrised_checked(layout(batch), kalman.MIN_EIGENVALUE)
            want = _reference_symmetrised_checked(batch, kalman.MIN_EIGENVALUE)
            _same_bits(got[0], want[0])
            _same_bits(got[1], want[1])
            assert got[2] == want[2]
    bad = p[:6].copy()
    bad[1, 2, 3], bad[3, 0, 0], bad[4, 1, 0] = np.nan, np.inf, 1e308
    bad[4, 0, 1] = 1e308  # finite entries whose sum overflows: broken after symmetrising
    got = kalman_kernels.symmetrised_checked(bad, kalman.MIN_EIGENVALUE)
    want = _reference_symmetrised_checked(bad, kalman.MIN_EIGENVALUE)
    _same_bits(got[0], want[0])
    assert got[1].tolist() == want[1].tolist() == [False, True, False, True, True, False]
    assert not got[2]
