"""The picture checks' fast paths against the Python forms they replaced (kept here as references),
over random egos and tracks with NaN, inf, signed zeros and boundary values planted, and the one
compiled call of all three (``picture_flags``) against the three checks, arrays of odd types,
ranks and layouts included."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.messages import EgoState, Tracks
from safety.picture import (PictureConfig, heading_lost, heading_sigma_rad, localisation_lost, obstacle_close_ahead,
                            picture_flags, position_sigma_m)


# --- references: the forms before the fast paths ---
def _ref_obstacle_close_ahead(ego: EgoState, tracks: Tracks, cfg: PictureConfig) -> bool:
    if ego is None or tracks is None or len(tracks) == 0:
        return False
    x0, y0, yaw = ego.pose[:3].tolist()
    if not (math.isfinite(x0) and math.isfinite(y0) and math.isfinite(yaw)):
        return False
    c, s = math.cos(yaw), math.sin(yaw)
    xy = np.asarray(tracks.states, dtype=np.float64)[:, :2].tolist()
    for (x, y), existence in zip(xy, np.asarray(tracks.existence, dtype=np.float64).tolist()):
        dx, dy = x - x0, y - y0
        ahead, lateral = c * dx + s * dy, -s * dx + c * dy
        if (0.0 < ahead <= cfg.close_ahead_m and abs(lateral) <= cfg.close_half_width_m
                and existence >= cfg.min_existence):
            return True
    return False


def _ref_position_sigma_m(covariance) -> float:
    c = np.asarray(covariance, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 2:
        return math.inf
    (a, c01), (c10, d) = c[:2, :2].tolist()
    b = 0.5 * (c01 + c10)
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(d)) or a < 0.0 or d < 0.0:
        return math.inf
    lam = 0.5 * (a + d) + math.hypot(0.5 * (a - d), b)
    return math.sqrt(max(lam, 0.0))


def _ref_heading_sigma_rad(covariance) -> float:
    c = np.asarray(covariance, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 3 or c.shape[1] < 3:
        return math.inf
    var = float(c[2, 2])
    return math.sqrt(var) if math.isfinite(var) and var >= 0.0 else math.inf


SPECIAL = (math.nan, math.inf, -math.inf, 0.0, -0.0, 40.0, 2.5, -2.5, 0.5)


def _tracks(rng: np.random.Generator, n: int, dtype) -> Tracks:
    states = rng.normal(0.0, 1.0, (n, 4)) * rng.choice([1.0, 10.0, 50.0])
    states[:, 0] += rng.uniform(-5.0, 50.0)
    existence = rng.uniform(0.0, 1.0, n)
    for a in (states, existence):
        if a.size and rng.random() < 0.4:
            a.flat[int(rng.integers(a.size))] = SPECIAL[int(rng.integers(len(SPECIAL)))]
    states = states.astype(dtype)
    if n > 1 and rng.random() < 0.3:
        states = states[::-1]  # a strided view
    return Tracks(0, np.arange(n), states, np.zeros((n, 4, 4)), np.zeros(n), np.ones((n, 3)),
                  np.zeros(n, np.int16), existence)


def test_obstacle_close_ahead_equals_reference():
    rng = np.random.default_rng(17)
    cfg = PictureConfig()
    seen = {True: 0, False: 0}
    for _ in range(3000):
        pose = np.array([rng.normal(0.0, 5.0), rng.normal(0.0, 2.0), rng.uniform(-0.5, 0.5)])
        if rng.random() < 0.1:
            pose[int(rng.integers(3))] = SPECIAL[int(rng.integers(3))]
        ego = EgoState(0, pose, 10.0, 0.0, 0.0, np.eye(5))
        tracks = _tracks(rng, int(rng.choice([0, 1, 3, 8])), rng.choice([np.float64, np.float32]))
        expected = _ref_obstacle_close_ahead(ego, tracks, cfg)
        assert obstacle_close_ahead(ego, tracks, cfg) == expected
        seen[expected] += 1
    assert min(seen.values()) > 200


def test_sigmas_equal_reference():
    rng = np.random.default_rng(19)
    for _ in range(2000):
        cov = rng.normal(0.0, 1.0, (5, 5)) * rng.choice([1e-6, 1.0, 1e3])
        cov = cov @ cov.T if rng.random() < 0.7 else cov
        if rng.random() < 0.3:
            cov[int(rng.integers(3)), int(rng.integers(3))] = SPECIAL[int(rng.integers(len(SPECIAL)))]
        for c in (cov, cov.astype(np.float32), cov.astype(">f8"), cov[:2, :2], cov[::-1, ::-1], cov.tolist()):
            assert np.float64(position_sigma_m(c)).tobytes() == np.float64(_ref_position_sigma_m(c)).tobytes()
            assert np.float64(heading_sigma_rad(c)).tobytes() == np.float64(_ref_heading_sigma_rad(c)).tobytes()


def _ref_picture_flags(ego, tracks, cfg: PictureConfig) -> frozenset[str]:
    """The stack's picture before the one compiled call: the three checks, one by one."""
    flags = set()
    if localisation_lost(ego, cfg):
        flags.add("localisation.lost")
    if heading_lost(ego, cfg):
        flags.add("localisation.heading_lost")
    if obstacle_close_ahead(ego, tracks, cfg):
        flags.add("picture.obstacle_close_ahead")
    return frozenset(flags)


def _odd_array(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    """``a`` as it may come: mostly as it is, else read-only, strided, float32, big-endian or reshaped."""
    choice = int(rng.integers(24))
    if choice == 0:
        a = a.copy()
        a.flags.writeable = False
    elif choice == 1 and a.ndim == 2 and a.shape[0] > 1:
        a = a[::-1]
    elif choice == 2:
        a = a.astype(np.float32)
    elif choice == 3:
        a = a.astype(">f8")
    elif choice == 4:
        a = a.reshape(-1)
    elif choice == 5 and a.ndim == 2:
        a = a[:, :int(rng.integers(a.shape[1] + 1))]
    return a


def test_picture_flags_equal_the_three_checks():
    rng = np.random.default_rng(23)
    cfg = PictureConfig()
    seen: dict[frozenset, int] = {}
    for i in range(6000):
        pose = np.array([rng.normal(0.0, 5.0), rng.normal(0.0, 2.0), rng.uniform(-0.5, 0.5)])
        if rng.random() < 0.1:
            pose[int(rng.integers(3))] = SPECIAL[int(rng.integers(3))]
        if rng.random() < 0.05:
            pose = pose[:int(rng.integers(1, 3))] if rng.random() < 0.5 else np.append(pose, 1.0)
        cov = rng.normal(0.0, 1.0, (5, 5)) * rng.choice([1e-3, 0.02, 0.5, 1.0])
        cov = cov @ cov.T if rng.random() < 0.8 else cov
        if rng.random() < 0.2:
            cov[int(rng.integers(3)), int(rng.integers(3))] = SPECIAL[int(rng.integers(len(SPECIAL)))]
        if rng.random() < 0.1:  # the position sigma at its limit, or within a few ulps of it
            cov[0, 1] = cov[1, 0] = 0.0
            cov[0, 0] = cov[1, 1] = np.nextafter(cfg.max_position_sigma_m ** 2, rng.choice([0.0, 2.0]))
        if rng.random() < 0.05:
            cov = cov[:int(rng.integers(1, 4)), :int(rng.integers(1, 4))]
        ego = EgoState(0, _odd_array(rng, pose), 10.0, 0.0, 0.0, _odd_array(rng, cov)) if rng.random() > 0.02 else None
        tracks = _tracks(rng, int(rng.choice([0, 1, 3, 8])), rng.choice([np.float64, np.float32]))
        if rng.random() < 0.1:
            tracks = None
        elif rng.random() < 0.1:
            tracks = Tracks(0, tracks.ids, _odd_array(rng, tracks.states), tracks.covariances, tracks.yaws,
                            tracks.sizes, tracks.labels, _odd_array(rng, tracks.existence))
        try:
            expected = _ref_picture_flags(ego, tracks, cfg)
        except Exception as exc:  # the same error, raised the same way
            with pytest.raises(type(exc)):
                picture_flags(ego, tracks, cfg)
            continue
        assert picture_flags(ego, tracks, cfg) == expected, i
        seen[expected] = seen.get(expected, 0) + 1
    assert len(seen) >= 6 and min(seen.values()) > 20, seen
