"""Road.to_cartesian's compiled kernel (core/road_kernels.py ``frenet_to_map``) against the numpy forms it
replaced, kept here as the reference: the same operations in the same order, so the results must be
equal to the bit (core/jit.py), points off the road's ends, signed zeros and NaN included."""
from __future__ import annotations

import numpy as np
import pytest

from core.road import SAMPLE_SPACING_M, Road, RoadSegment

ROADS = {
    "straight": Road((RoadSegment(2000.0),), 3, 3.5, 25.0),
    "rotated_straight": Road((RoadSegment(300.0), RoadSegment(300.0, 0.0)), 3, 3.5, 25.0, start_pose=(1.0, 2.0, 0.3)),
    "s_bend": Road((RoadSegment(100.0), RoadSegment(300.0, -1 / 60.0), RoadSegment(50.0),
                    RoadSegment(700.0, 1 / 80.0)), 3, 3.5, 25.0, start_pose=(5.0, -3.0, 0.7)),
    "spiral_over_a_full_turn": Road((RoadSegment(500.0, 1 / 50.0),), 2, 3.5, 25.0),
    "barely_curved": Road((RoadSegment(500.0, 1e-13),), 3, 3.5, 30.0),  # below the arc threshold
    "curve_scenario": Road((RoadSegment(200.0), RoadSegment(700.0, 0.004), RoadSegment(600.0)), 3, 3.5, 20.0),
    # Not a multiple of SAMPLE_SPACING_M long: samples 338.1 / 677 m apart.
    "odd_lengths": Road((RoadSegment(100.3), RoadSegment(157.1, 0.02), RoadSegment(80.7, -0.03)), 3, 3.5, 20.0),
}


# --- reference: the numpy forms ----------------------------------------------------------------------
def reference_interpolated(road: Road, s, d):
    """Road.interpolate plus d along the normal (the general path)."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, road.length_m)
    i = np.clip((s * road.samples_per_m).astype(np.int64), 0, len(road.s_m) - 2)
    u = s - road.s_m[i]
    k = road.curvature_1pm[i]
    h0 = road.heading_rad[i]
    heading = h0 + k * u
    mid = h0 + 0.5 * k * u
    chord = np.where(np.abs(k) > 1e-12, 2.0 * np.sin(0.5 * k * u) / np.where(k == 0, 1.0, k), u)
    ref = road.xy_m[i] + np.stack([chord * np.cos(mid), chord * np.sin(mid)], axis=-1)
    normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
    return ref + np.asarray(d, dtype=np.float64)[..., None] * normal, heading


def reference_line(road: Road, s, d):
    """The straight road's numpy path: k == 0 folded in, one heading's cosine and sine."""
    cos_0, sin_0 = np.cos(road.heading_rad[0]), np.sin(road.heading_rad[0])
    s = np.minimum(np.maximum(s, 0.0), road.length_m)
    i = np.minimum(np.maximum((s * road.samples_per_m).astype(np.int64), 0), road.s_m.shape[0] - 2)
    u = s - road.s_m[i]
    heading = road.heading_rad[i] + 0.0 * u
    out = road.xy_m[i] + u[:, None] * np.array([[cos_0, sin_0]])
    out += d[:, None] * np.array([[-sin_0, cos_0]])
    return out, heading


def reference(road: Road, s, d):
    return reference_line(road, s, d) if road.is_straight else reference_interpolated(road, s, d)


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def frenet_points(road: Road, rng, n):
    s = np.concatenate([rng.uniform(-20.0, road.length_m + 20.0, n), road.s_m[::37] + rng.uniform(-1e-9, 1e-9),
                        road.s_m[::53], [0.0, -0.0, road.length_m, np.nextafter(road.length_m, 0.0), 1e-300]])
    d = rng.uniform(-9.0, 9.0, s.shape[0])
    d[::11] = -0.0
    d[::13] = 0.0
    return s, d


@pytest.mark.parametrize("name", sorted(ROADS))
def test_to_cartesian_matches_the_numpy_forms(name):
    road, rng = ROADS[name], np.random.default_rng(17)
    s, d = frenet_points(road, rng, 20000)
    with np.errstate(invalid="ignore"):
        xy_ref, h_ref = reference(road, s, d)
    xy, h = road.to_cartesian(s, d)
    assert same_bits(xy, xy_ref) and same_bits(h, h_ref)
    # Strided and broadcast inputs take the same path.
    xy, h = road.to_cartesian(s[::3], np.broadcast_to(d[:1], s[::3].shape))
    xy_ref, h_ref = reference(road, s[::3], np.broadcast_to(d[:1], s[::3].shape))
    assert same_bits(xy, xy_ref) and same_bits(h, h_ref)


@pytest.mark.parametrize("name", sorted(ROADS))
def test_to_cartesian_non_finite_points_follow_numpy(name):
    road = ROADS[name]
    s = np.array([np.nan, np.inf, -np.inf, 10.0, 10.0, np.nan])
    d = np.array([0.0, 1.0, 1.0, np.nan, np.inf, np.nan])
    with np.errstate(invalid="ignore"):
        xy_ref, h_ref = reference(road, s, d)
        xy, h = road.to_cartesian(s, d)
    # NaN where numpy has NaN (the sign of a NaN from two NaN operands is not specified), the bits elsewhere.
    for got, ref in ((xy, xy_ref), (h, h_ref)):
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        assert same_bits(got[~np.isnan(ref)], ref[~np.isnan(ref)])


def test_to_cartesian_other_shapes_keep_the_interpolation():
    road = ROADS["s_bend"]
    xy, h = road.to_cartesian(120.0, 1.5)
    xy_ref, h_ref = reference_interpolated(road, 120.0, 1.5)
    assert xy.shape == (2,) and same_bits(xy, xy_ref) and same_bits(h, h_ref)
    s = np.linspace(0.0, 300.0, 12).reshape(3, 4)
    xy, h = road.to_cartesian(s, 0.5)
    xy_ref, h_ref = reference_interpolated(road, s, 0.5)
    assert xy.shape == (3, 4, 2) and same_bits(xy, xy_ref) and same_bits(h, h_ref)
    xy, h = road.to_cartesian(np.zeros(0), np.zeros(0))
    assert xy.shape == (0, 2) and h.shape == (0,)


# --- reference: the world's scalar Frenet tracking in Python floats ----------------------------------
def reference_track_frenet(road: Road, cx: float, cy: float, s_guess: float) -> tuple[float, float]:
    import math

    ref_s, ref_k, ref_h = road.s_m.tolist(), road.curvature_1pm.tolist(), road.heading_rad.tolist()
    ref_x, ref_y = road.xy_m[:, 0].tolist(), road.xy_m[:, 1].tolist()
    s, d = s_guess, 0.0
    last = len(ref_s) - 2
    for _ in range(3):
        i = min(max(int(s * road.samples_per_m), 0), last)
        u, k, h0 = s - ref_s[i], ref_k[i], ref_h[i]
        chord = 2.0 * math.sin(0.5 * k * u) / k if abs(k * u) > 1e-12 else u
        mid, h = h0 + 0.5 * k * u, h0 + k * u
        dx = cx - ref_x[i] - chord * math.cos(mid)
        dy = cy - ref_y[i] - chord * math.sin(mid)
        cos_h, sin_h = math.cos(h), math.sin(h)
        along = dx * cos_h + dy * sin_h
        d = -dx * sin_h + dy * cos_h
        s += along / max(1.0 - k * d, 1e-3)
        if abs(along) < 1e-7:
            break
    return min(max(s, 0.0), road.length_m), d


@pytest.mark.parametrize("name", sorted(ROADS))
def test_track_frenet_matches_the_python_newton_steps(name):
    road, rng = ROADS[name], np.random.default_rng(23)
    s_true = np.concatenate([rng.uniform(-5.0, road.length_m + 5.0, 3000), [0.0, road.length_m]])
    d_true = rng.uniform(-9.0, 9.0, s_true.shape[0])
    xy, _ = road.to_cartesian(s_true, d_true)
    # Guesses near the point (the tracked case), far from it (steps that do not converge in three)
    # and on the road's ends.
    offsets = np.where(rng.random(s_true.shape[0]) < 0.8, rng.uniform(-0.6, 0.6, s_true.shape[0]),
                       rng.uniform(-60.0, 60.0, s_true.shape[0]))
    guesses = np.clip(s_true + offsets, 0.0, road.length_m)
    for (x, y), guess in zip(xy.tolist(), guesses.tolist()):
        got = road.track_frenet(x, y, guess)
        ref = reference_track_frenet(road, x, y, guess)
        assert got == ref and np.signbit(got[1]) == np.signbit(ref[1]), (x, y, guess)
        assert type(got[0]) is float and type(got[1]) is float


def test_track_frenet_rejects_a_non_finite_guess_as_int_does():
    road = ROADS["s_bend"]
    with pytest.raises(ValueError):
        road.track_frenet(10.0, 1.0, float("nan"))
    with pytest.raises(OverflowError):
        road.track_frenet(10.0, 1.0, float("inf"))


# --- sample spacing ------------------------------------------------------------------------------------
def test_lookups_use_the_roads_own_sample_spacing():
    """Samples are length / (n - 1) apart, shorter than SAMPLE_SPACING_M on a road whose length is not
    a multiple of it: a point in sample j's step lies on the exact arc from sample j, with sample j's
    curvature. Just past a segment join that is the new segment's curvature, which indexing with
    SAMPLE_SPACING_M misses (it reads sample j - 1, of the segment before)."""
    road = ROADS["odd_lengths"]
    spacing = road.length_m / (road.s_m.shape[0] - 1)
    assert spacing < SAMPLE_SPACING_M
    j = np.arange(road.s_m.shape[0] - 1)
    for frac in (0.05, 0.45, 0.95):
        s = road.s_m[:-1] + frac * spacing
        u = s - road.s_m[j]
        k, h0 = road.curvature_1pm[j], road.heading_rad[j]
        chord = np.where(k != 0.0, 2.0 * np.sin(0.5 * k * u) / np.where(k == 0.0, 1.0, k), u)
        mid = h0 + 0.5 * k * u
        ref = road.xy_m[j] + np.stack([chord * np.cos(mid), chord * np.sin(mid)], axis=-1)
        xy, heading, kappa = road.interpolate(s)
        assert np.array_equal(kappa, k)
        np.testing.assert_allclose(heading, h0 + k * u, rtol=0.0, atol=1e-12)
        np.testing.assert_allclose(xy, ref, rtol=0.0, atol=1e-9)
        xy_k, heading_k = road.to_cartesian(s, np.zeros_like(s))  # the compiled path
        np.testing.assert_allclose(heading_k, h0 + k * u, rtol=0.0, atol=1e-12)
        np.testing.assert_allclose(xy_k, ref, rtol=0.0, atol=1e-9)
    # Analytic at the joins (100.3 m and 257.4 m): the first sample past a join and the points of its
    # step carry the new segment's curvature.
    for join, k_after in ((100.3, 0.02), (257.4, -0.03)):
        first = int(np.searchsorted(road.s_m, join, side="right"))
        s = road.s_m[first] + np.array([0.01, 0.25, 0.5, 0.75]) * spacing
        assert np.array_equal(road.interpolate(s)[2], np.full(4, k_after))
    # Newton tracking of points just past the second join converges onto them.
    first = int(np.searchsorted(road.s_m, 257.4, side="right"))
    for s_true in road.s_m[first] + np.array([0.1, 0.3]) * spacing:
        x, y = road.to_cartesian(np.array([s_true]), np.array([1.5]))[0][0].tolist()
        s_got, d_got = road.track_frenet(x, y, s_true + 0.2)
        assert abs(s_got - s_true) < 1e-9 and abs(d_got - 1.5) < 1e-9


@pytest.mark.parametrize("name", sorted(set(ROADS) - {"odd_lengths"}))
def test_roads_a_multiple_of_the_spacing_long_keep_their_bits(name):
    """For these the road's spacing is exactly SAMPLE_SPACING_M: indexing with it gives the bits of
    s / SAMPLE_SPACING_M."""
    road, rng = ROADS[name], np.random.default_rng(5)
    assert road.samples_per_m == 1.0 / SAMPLE_SPACING_M == 2.0
    s, d = frenet_points(road, rng, 5000)
    s_in = np.clip(s, 0.0, road.length_m)
    old_i = np.clip((s_in / SAMPLE_SPACING_M).astype(np.int64), 0, len(road.s_m) - 2)
    new_i = np.clip((s_in * road.samples_per_m).astype(np.int64), 0, len(road.s_m) - 2)
    assert np.array_equal(old_i, new_i)


# --- to_frenet of point sets on a straight road (core/road_kernels.py ``line_to_frenet``) ------------------
def reference_line_to_frenet(road: Road, xy):
    """Road.to_frenet's numpy form for (N, 2) points on a road without arcs: nearest_sample's
    rounded foot index, then the projection onto that sample's (the line's) tangent."""
    to_index = road._line_to_index_xy
    idx_f = xy[:, 0] * to_index[0] + xy[:, 1] * to_index[1] + road._line_index0
    i = np.rint(np.fmin(np.fmax(idx_f, 0.0), road.s_m.shape[0] - 1)).astype(np.int64)
    delta = xy - road.xy_m[i]
    cos_h, sin_h = road.line_cos_sin
    dx, dy = delta[:, 0], delta[:, 1]
    return road.s_m[i] + (dx * cos_h + dy * sin_h), -dx * sin_h + dy * cos_h


@pytest.mark.parametrize("name", ["straight", "rotated_straight"])
def test_to_frenet_of_points_on_a_line_matches_the_numpy_form(name):
    road, rng = ROADS[name], np.random.default_rng(5)
    s, d = frenet_points(road, rng, 20000)
    xy, _ = road.to_cartesian(s, d)
    # Points exactly half way between samples (ties of the rounding), off both ends, and non-finite.
    mid = 0.5 * (road.xy_m[:-1] + road.xy_m[1:])
    xy = np.concatenate([xy, mid[::7], [[np.nan, 0.0], [np.inf, 1.0], [-np.inf, 1.0], [0.0, np.nan]]])
    with np.errstate(invalid="ignore"):
        s_ref, d_ref = reference_line_to_frenet(road, xy)
        s_got, d_got = road.to_frenet(xy)
    for got, ref in ((s_got, s_ref), (d_got, d_ref)):
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        assert same_bits(got[~np.isnan(ref)], ref[~np.isnan(ref)])
    # Strided and read-only inputs, and no points.
    finite = xy[:-4]
    view = np.broadcast_to(finite[:1], (5, 2))
    assert all(same_bits(a, b) for a, b in zip(road.to_frenet(view), reference_line_to_frenet(road, view)))
    assert all(same_bits(a, b) for a, b in zip(road.to_frenet(finite[::3]), reference_line_to_frenet(road, finite[::3])))
    assert all(a.shape == (0,) and a.dtype == np.float64 for a in road.to_frenet(np.zeros((0, 2))))


# --- nearest sample and to_frenet on roads with arcs (core/road_kernels.py ``curved_to_frenet``) -----------
def reference_nearest_sample(road: Road, xy):
    """Road.nearest_sample's numpy form on a road with arcs: per piece the clamped foot point, five
    sample indices around it, the first nearest by squared distance (np.argmin's)."""
    from core.road import _CANDIDATE_OFFSETS
    x, y = xy[:, 0:1], xy[:, 1:2]
    feet = []
    p = road._straight
    if p is not None:
        feet.append(p.s_mid + (x - p.mid_x) * p.cos_h + (y - p.mid_y) * p.sin_h)
    p = road._arcs
    bx, by = x - p.centre_x, y - p.centre_y
    phi = np.arctan2(p.rad_x * by - p.rad_y * bx, p.rad_x * bx + p.rad_y * by)
    feet.append(p.s_mid + phi * p.inv_k)
    foot = feet[0] if len(feet) == 1 else np.concatenate(feet, axis=1)
    foot = np.fmin(np.fmax(foot, road._piece_s0), road._piece_s1)
    centre_idx = np.rint(foot * road.samples_per_m).astype(np.int64)
    cand = (centre_idx[:, :, None] + _CANDIDATE_OFFSETS).reshape(xy.shape[0], -1)
    cand = np.minimum(np.maximum(cand, 0), road.s_m.shape[0] - 1)
    ref = road.xy_m[cand]
    dx, dy = ref[..., 0] - x, ref[..., 1] - y
    return cand[np.arange(xy.shape[0]), (dx * dx + dy * dy).argmin(axis=1)]


def reference_curved_to_frenet(road: Road, xy):
    """Road.to_frenet's numpy form on a road with arcs: the nearest sample's tangent, the along-track
    distance shrunk by the lateral offset."""
    i = reference_nearest_sample(road, xy)
    delta = xy - road.xy_m[i]
    cos_h, sin_h = road._cos_h[i], road._sin_h[i]
    dx, dy = delta[:, 0], delta[:, 1]
    along = dx * cos_h + dy * sin_h
    lateral = -dx * sin_h + dy * cos_h
    along = along / np.maximum(1.0 - road.curvature_1pm[i] * lateral, 1e-3)
    return road.s_m[i] + along, lateral


CURVED = sorted(name for name, road in ROADS.items() if road._arcs is not None)


@pytest.mark.parametrize("name", CURVED)
def test_to_frenet_on_a_curved_road_matches_the_numpy_form(name):
    road, rng = ROADS[name], np.random.default_rng(11)
    s, d = frenet_points(road, rng, 20000)
    xy, _ = road.to_cartesian(s, 3.0 * d)  # up to 27 m off the reference line
    lo, hi = road.xy_m.min(axis=0) - 200.0, road.xy_m.max(axis=0) + 200.0
    far = rng.uniform(lo, hi, (5000, 2))  # anywhere around the road, its centres of curvature included
    mid = 0.5 * (road.xy_m[:-1] + road.xy_m[1:])  # half way between samples: ties of the distance
    xy = np.concatenate([xy, far, mid[::7], [[np.nan, 0.0], [np.inf, 1.0], [-np.inf, 1.0], [0.0, np.nan],
                                             [np.inf, np.inf]]])
    with np.errstate(invalid="ignore"):
        assert np.array_equal(road.nearest_sample(xy), reference_nearest_sample(road, xy))
        s_ref, d_ref = reference_curved_to_frenet(road, xy)
        s_got, d_got = road.to_frenet(xy)
    for got, ref in ((s_got, s_ref), (d_got, d_ref)):
        assert np.array_equal(np.isnan(got), np.isnan(ref))  # a NaN's sign may differ
        assert same_bits(got[~np.isnan(ref)], ref[~np.isnan(ref)])
    # One point, a point as (2,), other shapes, strided and read-only inputs, and no points.
    finite = xy[:-5]
    one_s, one_d = road.to_frenet(finite[3])
    assert isinstance(one_s, np.floating) and one_s == s_ref[3] and one_d == d_ref[3]
    grid = finite[:12].reshape(3, 4, 2)
    assert all(same_bits(a, b.reshape(3, 4)) for a, b in zip(road.to_frenet(grid), (s_ref[:12], d_ref[:12])))
    view = np.broadcast_to(finite[:1], (5, 2))
    assert all(same_bits(a, b) for a, b in zip(road.to_frenet(view), reference_curved_to_frenet(road, view)))
    assert all(same_bits(a, b) for a, b in zip(road.to_frenet(finite[::3]),
                                                  reference_curved_to_frenet(road, finite[::3])))
    assert all(a.shape == (0,) and a.dtype == np.float64 for a in road.to_frenet(np.zeros((0, 2))))
    assert road.nearest_sample(np.zeros((0, 2))).shape == (0,)


@pytest.mark.parametrize("name", sorted(ROADS))
def test_point_to_frenet_matches_to_frenet_of_one_point(name):
    road, rng = ROADS[name], np.random.default_rng(13)
    s, d = frenet_points(road, rng, 500)
    xy, _ = road.to_cartesian(s, 3.0 * d)
    xy = np.concatenate([xy, [[np.nan, 0.0], [np.inf, 1.0], [0.0, np.nan]]])
    with np.errstate(invalid="ignore"):
        for x, y in xy.tolist():
            s_one, d_one = road.to_frenet(np.array([[x, y]]))
            got = road.point_to_frenet(x, y)
            assert all(type(v) is float for v in got)
            for v, ref in zip(got, (s_one[0], d_one[0])):
                assert (np.isnan(v) and np.isnan(ref)) or same_bits(np.float64(v), ref)
