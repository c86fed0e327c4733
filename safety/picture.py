"""Judging the fused picture: is the ego still localised, and is an obstacle close ahead of it.

Both read only core messages (EgoState, Tracks) and are vectorised over the tracks.
``picture_flags`` gives all three verdicts (the monitor's picture.* and localisation.* flags) with
one compiled call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import types

from core.config import rng
from core.jit import kernel
from core.messages import EgoState, Tracks


@dataclass(frozen=True, slots=True)
class PictureConfig:
    # Localisation is lost when the 1-sigma position uncertainty along its worst axis exceeds this:
    # beyond ~1 m the lane (3.5 m wide) can no longer be held with margin.
    max_position_sigma_m: float = field(default=1.0, metadata=rng(0.05, 100.0))
    # ... or when the 1-sigma heading uncertainty exceeds this [rad]: steering follows the heading,
    # and 0.05 rad puts the path 0.5 m off at 10 m of preview and 1 m/s sideways at 20 m/s. The
    # IMU's yaw rate keeps it near 0.01 (at rest too: its process noise scales with speed);
    # without it the sigma passes 0.05 within ~0.45 s, long before the position sigma says
    # anything, while the heading error grows to tenths of a radian.
    max_heading_sigma_rad: float = field(default=0.05, metadata=rng(0.001, 3.2))
    # "Close ahead": a track whose centre lies within this distance in front of the ego ...
    close_ahead_m: float = field(default=40.0, metadata=rng(1.0, 500.0))
    # ... and within this lateral offset of the ego's axis (half a lane plus half a car).
    close_half_width_m: float = field(default=2.5, metadata=rng(0.1, 20.0))
    min_existence: float = field(default=0.5, metadata=rng(0.0, 1.0))


def _float64_array(values) -> np.ndarray:
    """``np.asarray(values, dtype=np.float64)`` without its call for what is one already (a few
    hundred ns each, at 50 Hz): the ego's and the tracks' arrays. Either byte order reads as the
    same Python floats."""
    if type(values) is np.ndarray and values.dtype.char == "d":
        return values
    return np.asarray(values, dtype=np.float64)


def position_sigma_m(covariance: np.ndarray) -> float:
    """Square root of the larger eigenvalue of the (x, y) block: the worst-axis 1-sigma [m];
    inf when the covariance is not finite or not positive semi-definite."""
    c = _float64_array(covariance)
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 2:
        return math.inf
    # Four Python floats by index: a slice and its conversion cost three times as much.
    a, c01, c10, d = c.item(0, 0), c.item(0, 1), c.item(1, 0), c.item(1, 1)
    b = 0.5 * (c01 + c10)
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(d)) or a < 0.0 or d < 0.0:
        return math.inf
    # Closed form for the symmetric 2x2: mean + sqrt(half-difference^2 + b^2).
    lam = 0.5 * (a + d) + math.hypot(0.5 * (a - d), b)
    return math.sqrt(max(lam, 0.0))


def heading_sigma_rad(covariance: np.ndarray) -> float:
    """Square root of the yaw variance (state 2 of x, y, yaw, ...) [rad]; inf when it is missing,
    not finite or negative."""
    c = _float64_array(covariance)
    if c.ndim != 2 or c.shape[0] < 3 or c.shape[1] < 3:
        return math.inf
    var = c.item(2, 2)
    return math.sqrt(var) if math.isfinite(var) and var >= 0.0 else math.inf


def localisation_lost(ego: EgoState | None, cfg: PictureConfig) -> bool:
    """The pose is not finite, or its position uncertainty is over its limit."""
    if ego is None:
        return False  # not yet localised is the start-up, covered by the ego streams' liveness
    pose_ok = all(map(math.isfinite, _float64_array(ego.pose).ravel().tolist()))  # 3 floats: no ufunc
    return (not pose_ok) or position_sigma_m(ego.covariance) > cfg.max_position_sigma_m


def heading_lost(ego: EgoState | None, cfg: PictureConfig) -> bool:
    """The heading uncertainty is over its limit (a non-finite pose is ``localisation_lost``'s)."""
    return ego is not None and heading_sigma_rad(ego.covariance) > cfg.max_heading_sigma_rad


def obstacle_close_ahead(ego: EgoState | None, tracks: Tracks | None, cfg: PictureConfig) -> bool:
    """True if a confirmed track's centre is within the close-ahead box in front of the ego."""
    if ego is None or tracks is None or tracks.ids.shape[0] == 0:  # len(tracks), without its method call
        return False
    x0, y0, yaw = ego.pose[:3].tolist()
    if not (math.isfinite(x0) and math.isfinite(y0) and math.isfinite(yaw)):
        return False
    c, s = math.cos(yaw), math.sin(yaw)
    ahead_max, half_width, min_existence = cfg.close_ahead_m, cfg.close_half_width_m, cfg.min_existence
    states, existence = _float64_array(tracks.states), _float64_array(tracks.existence)
    if states.ndim == 2 and states.shape[1] >= 2 and existence.ndim == 1:
        return _any_close_ahead(states, existence, x0, y0, c, s, ahead_max, half_width, min_existence)
    # Any other shape, as the kernel's Python form (where it raises, it raises as before).
    for (x, y), p_exist in zip(states[:, :2].tolist(), existence.tolist()):
        dx, dy = x - x0, y - y0
        ahead, lateral = c * dx + s * dy, -s * dx + c * dy
        if 0.0 < ahead <= ahead_max and abs(lateral) <= half_width and p_exist >= min_existence:
            return True
    return False


_TRACK_VALUES = types.Array(types.float64, 2, "A", readonly=True)


@kernel(types.boolean(_TRACK_VALUES, types.Array(types.float64, 1, "A", readonly=True), types.float64, types.float64,
                      types.float64, types.float64, types.float64, types.float64, types.float64))
def _any_close_ahead(states, existence, x0, y0, c, s, ahead_max, half_width, min_existence):
    """True if a track (rows of states: x, y, ...) with its existence at least ``min_existence``
    lies in the close-ahead box of the ego at (x0, y0) heading (cos c, sin s): one compiled call
    instead of the per-track Python loop (and its conversions), with the same IEEE operations."""
    for i in range(min(states.shape[0], existence.shape[0])):  # zip's length
        dx, dy = states[i, 0] - x0, states[i, 1] - y0
        ahead, lateral = c * dx + s * dy, -s * dx + c * dy  # the track centre in the vehicle frame
        # NaN compares false: a non-finite track never counts as close.
        if 0.0 < ahead <= ahead_max and abs(lateral) <= half_width and existence[i] >= min_existence:
            return True
    return False


LOCALISATION_LOST = "localisation.lost"
HEADING_LOST = "localisation.heading_lost"
OBSTACLE_CLOSE_AHEAD = "picture.obstacle_close_ahead"
# The verdict bits of ``_picture_bits``; UNDECIDED: the Python forms decide.
_LOCALISATION_BIT, _HEADING_BIT, _OBSTACLE_BIT, _UNDECIDED = 1, 2, 4, 8
# Each combination of the three verdicts as its flag set (a fixed table of 8, built at import).
_FLAG_SETS = tuple(frozenset(flag for bit, flag in ((_LOCALISATION_BIT, LOCALISATION_LOST),
                                                     (_HEADING_BIT, HEADING_LOST),
                                                     (_OBSTACLE_BIT, OBSTACLE_CLOSE_AHEAD)) if bits & bit)
                   for bits in range(8))
_NO_STATES = np.zeros((0, 2))
_NO_EXISTENCE = np.zeros(0)
for _empty in (_NO_STATES, _NO_EXISTENCE):
    _empty.flags.writeable = False
# The compiled position sigma (libm's hypot) may differ from Python's math.hypot in the last bit: a
# sigma this close to its limit (relative) is left to ``position_sigma_m``, so that the verdict is
# the Python form's whatever the last bit.
_SIGMA_MARGIN = 1e-9


def picture_flags(ego: EgoState | None, tracks: Tracks | None, cfg: PictureConfig) -> frozenset[str]:
    """The flags of ``localisation_lost``, ``heading_lost`` and ``obstacle_close_ahead``, in one
    compiled call (recomputed at 50 Hz, with each fused picture) where the ego and the tracks hold
    float64 arrays of the documented ranks; the three Python forms decide anything else (where
    they raise, they raise as before)."""
    if ego is None:
        return _FLAG_SETS[0]
    pose, covariance = ego.pose, ego.covariance
    bits = _UNDECIDED
    if type(pose) is np.ndarray and type(covariance) is np.ndarray:
        states, existence, present = _NO_STATES, _NO_EXISTENCE, False
        arrays_ok = True
        if tracks is not None:
            ids = tracks.ids
            if type(ids) is np.ndarray and ids.ndim > 0:
                present = ids.shape[0] != 0
                if present:
                    states, existence = tracks.states, tracks.existence
                    arrays_ok = type(states) is np.ndarray and type(existence) is np.ndarray
            else:
                arrays_ok = False
        if arrays_ok:
            try:
                bits = _picture_bits(pose, covariance, states, existence, present, cfg.max_position_sigma_m,
                                     cfg.max_heading_sigma_rad, cfg.close_ahead_m, cfg.close_half_width_m,
                                     cfg.min_existence)
            except TypeError:  # not float64 arrays of the kernel's ranks: the Python forms
                bits = _UNDECIDED
    if bits & _UNDECIDED:
        bits = ((_LOCALISATION_BIT if localisation_lost(ego, cfg) else 0) | (_HEADING_BIT if heading_lost(ego, cfg) else 0)
                | (_OBSTACLE_BIT if obstacle_close_ahead(ego, tracks, cfg) else 0))
    return _FLAG_SETS[bits]


_POSE = types.Array(types.float64, 1, "A", readonly=True)
_MATRIX = types.Array(types.float64, 2, "A", readonly=True)


@kernel(types.int64(_POSE, _MATRIX, _TRACK_VALUES, _POSE, types.boolean, types.float64, types.float64, types.float64,
                    types.float64, types.float64))
def _picture_bits(pose, covariance, states, existence, tracks_present, max_position_sigma_m, max_heading_sigma_rad,
                  close_ahead_m, close_half_width_m, min_existence):
    """``picture_flags``' verdicts as bits, each by its Python form's operations (``localisation_lost``,
    ``heading_lost``, ``obstacle_close_ahead``); ``_UNDECIDED`` where the Python forms must decide: a
    pose of another length than 3, tracks with fewer than 2 columns, or a position sigma within
    ``_SIGMA_MARGIN`` of its limit."""
    if pose.shape[0] != 3 or (tracks_present and states.shape[1] < 2):
        return _UNDECIDED
    bits = 0
    x0, y0, yaw = pose[0], pose[1], pose[2]
    pose_finite = math.isfinite(x0) and math.isfinite(y0) and math.isfinite(yaw)
    rows, cols = covariance.shape[0], covariance.shape[1]
    if not pose_finite:
        bits |= _LOCALISATION_BIT
    elif rows < 2 or cols < 2:
        if math.inf > max_position_sigma_m:
            bits |= _LOCALISATION_BIT
    else:
        a, d = covariance[0, 0], covariance[1, 1]
        b = 0.5 * (covariance[0, 1] + covariance[1, 0])
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(d)) or a < 0.0 or d < 0.0:
            if math.inf > max_position_sigma_m:
                bits |= _LOCALISATION_BIT
        else:
            lam = 0.5 * (a + d) + math.hypot(0.5 * (a - d), b)
            sigma = math.sqrt(0.0 if 0.0 > lam else lam)  # max(lam, 0.0)
            if abs(sigma - max_position_sigma_m) <= _SIGMA_MARGIN * max_position_sigma_m:
                return _UNDECIDED
            if sigma > max_position_sigma_m:
                bits |= _LOCALISATION_BIT
    heading_sigma = math.inf
    if rows >= 3 and cols >= 3:
        var = covariance[2, 2]
        if math.isfinite(var) and var >= 0.0:
            heading_sigma = math.sqrt(var)
    if heading_sigma > max_heading_sigma_rad:
        bits |= _HEADING_BIT
    if tracks_present and pose_finite and _any_close_ahead(states, existence, x0, y0, math.cos(yaw), math.sin(yaw),
                                                           close_ahead_m, close_half_width_m, min_existence):
        bits |= _OBSTACLE_BIT
    return bits
