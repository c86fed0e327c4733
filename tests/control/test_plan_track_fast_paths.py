"""plan_track's compiled passes against the numpy forms they replaced (kept here as references):
the finiteness verdict of a plan (five sums) and the per-plan path geometry, over random and
degenerate plans: NaN and inf planted, values past float64's sum range, read-only and strided
arrays, other dtypes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from control.controller import _finite_plan
from control.pure_pursuit import track_path
from core.messages import Plan

# Plans near float64's limit overflow while they are made, and in the reference's sums.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")


def _ref_finite_plan(plan: Plan) -> bool:
    if plan.t_s.shape[0] == 0:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(float(plan.xy_m.sum()) + float(plan.speed_mps.sum()) + float(plan.accel_mps2.sum())
                             + float(plan.yaw_rad.sum()) + float(plan.t_s.sum()))


def _ref_geometry(xy_m: np.ndarray) -> tuple[np.ndarray, ...]:
    xy_m = np.ascontiguousarray(xy_m, dtype=np.float64)
    seg = xy_m[1:] - xy_m[:-1]
    seg_len2 = np.einsum("ij,ij->i", seg, seg)
    seg_len = np.sqrt(seg_len2)
    cum = np.empty(xy_m.shape[0])
    cum[0] = 0.0
    np.cumsum(seg_len, out=cum[1:])
    return seg, np.maximum(seg_len2, 1e-12), seg_len, cum


def _plans(rng: np.random.Generator):
    for _ in range(1500):
        k = int(rng.choice([0, 1, 2, 51]))
        scale = float(rng.choice([1.0, 1e150, 1e300, 1.7e308]))
        arrays = [rng.normal(0.0, 1.0, (k,)) * scale for _ in range(5)]
        xy = rng.normal(0.0, 1.0, (k, 2)) * scale
        if k and rng.random() < 0.3:
            a = (arrays + [xy])[int(rng.integers(6))]
            a.flat[int(rng.integers(a.size))] = (math.nan, math.inf, -math.inf)[int(rng.integers(3))]
        t_s, yaw, speed, accel, curvature = arrays
        if rng.random() < 0.2:
            xy = np.asfortranarray(xy)
        if rng.random() < 0.2:
            speed = np.repeat(speed, 2)[::2]  # strided
        if rng.random() < 0.1:
            accel = accel.astype(np.float32)  # not the kernel's type: the sums decide
        for a in (t_s, xy, yaw):
            if rng.random() < 0.2:
                a.flags.writeable = False
        yield Plan(0, t_s, xy, yaw, speed, accel, curvature)


def test_finite_plan_equals_the_sums():
    rng = np.random.default_rng(23)
    seen = {True: 0, False: 0}
    for plan in _plans(rng):
        expected = _ref_finite_plan(plan)
        assert _finite_plan(plan) == expected
        seen[expected] += 1
    assert min(seen.values()) > 300


def test_path_geometry_equals_numpy_bits():
    rng = np.random.default_rng(29)
    for _ in range(2000):
        k = int(rng.integers(1, 60))
        xy = rng.normal(0.0, 1.0, (k, 2)) * float(rng.choice([1e-300, 1e-6, 1.0, 1e5, 1e300]))
        if rng.random() < 0.3:
            xy = np.cumsum(xy, 0)
        if rng.random() < 0.2:
            xy = np.round(xy, 1)  # repeated vertices: zero-length segments
        if rng.random() < 0.1:
            xy[int(rng.integers(k))] = (math.nan, math.inf, -0.0)[int(rng.integers(3))]
        path = track_path(xy, 0.3)
        with np.errstate(over="ignore", invalid="ignore"):
            expected = _ref_geometry(xy)
        for got, ref in zip((path.seg_m, path.seg_len2_m2, path.seg_len_m, path.cum_m), expected):
            assert got.shape == ref.shape
            assert np.array_equal(np.isnan(got), np.isnan(ref))
            assert np.nan_to_num(got, nan=1.0).tobytes() == np.nan_to_num(ref, nan=1.0).tobytes()
