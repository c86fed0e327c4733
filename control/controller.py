"""Plan-tracking controller at 100 Hz: pure-pursuit steering, speed PID with acceleration feedforward,
actuator limits, and a controlled brake whenever the plan cannot be trusted.

Pure step: ``control_step(state, plan, ego, t_ns, vehicle, cfg) -> (state, command)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import types

from control.pure_pursuit import _VERTICES, TrackPath, _pursue, track_path
from core.config import rng
from core.jit import kernel
from core.messages import ControlCommand, EgoState, Plan
from core.records import fast_frozen_init
from core.vehicle import VehicleParams


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    plan_timeout_s: float = field(default=0.3, metadata=rng(0.01, 5.0))
    nominal_period_s: float = field(default=0.01, metadata=rng(0.001, 0.1))  # dt of the first step
    max_step_s: float = field(default=0.1, metadata=rng(0.001, 1.0))  # dt clamp after a gap
    lookahead_min_m: float = field(default=5.0, metadata=rng(0.5, 50.0))
    lookahead_time_s: float = field(default=0.9, metadata=rng(0.05, 5.0))
    speed_kp_1ps: float = field(default=0.8, metadata=rng(0.0, 10.0))
    speed_ki_1ps2: float = field(default=0.15, metadata=rng(0.0, 10.0))
    integral_limit_mps2: float = field(default=1.0, metadata=rng(0.0, 5.0))
    # Reference sampled this far ahead to make up for the first-order throttle/brake lag.
    accel_preview_s: float = field(default=0.2, metadata=rng(0.0, 2.0))
    fallback_decel_mps2: float = field(default=3.0, metadata=rng(0.5, 12.0))
    standstill_speed_mps: float = field(default=0.3, metadata=rng(0.0, 2.0))
    standstill_hold_mps2: float = field(default=1.0, metadata=rng(0.0, 5.0))
    # Rate limit of the acceleration command while the plan is not an emergency: replans and speed
    # corrections are spread out at a comfortable jerk; an emergency plan gets the actuator's limit.
    comfort_jerk_mps3: float = field(default=4.0, metadata=rng(0.1, 100.0))


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class PlanTrack:
    """What the controller derives from a plan once and reuses for every step that tracks it (a plan
    lives for about ten control steps): its finiteness verdict, its time tables and its path
    geometry."""

    plan: Plan  # the plan these were derived from (compared by identity)
    finite: bool
    t_s: np.ndarray  # float64, C-contiguous (the kernel's layout; a plan's own arrays as they are)
    speed_mps: np.ndarray
    accel_mps2: np.ndarray
    path: TrackPath | None  # None when the plan is not finite


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class LawConstants:
    """The tracking law's constants of one vehicle and controller configuration as one float64
    array (``law_constants``): one argument of ``_track_law`` instead of fifteen floats, each read
    from its record at every step."""

    vehicle: VehicleParams  # the records these were read from (compared by identity)
    cfg: ControllerConfig
    values: np.ndarray


def law_constants(vehicle: VehicleParams, cfg: ControllerConfig) -> LawConstants:
    """In the order ``_track_law`` reads them (``_K_*``)."""
    return LawConstants(vehicle, cfg, np.array(
        [cfg.accel_preview_s, cfg.speed_kp_1ps, cfg.speed_ki_1ps2, cfg.integral_limit_mps2, cfg.standstill_speed_mps,
         cfg.standstill_hold_mps2, cfg.lookahead_min_m, cfg.lookahead_time_s, cfg.comfort_jerk_mps3,
         vehicle.max_decel_mps2, vehicle.max_accel_mps2, vehicle.max_jerk_mps3, vehicle.max_steer_rad,
         vehicle.max_steer_rate_rps, vehicle.wheelbase_m], dtype=np.float64))


(_K_PREVIEW, _K_KP, _K_KI, _K_INTEGRAL_LIMIT, _K_STANDSTILL_SPEED, _K_STANDSTILL_HOLD, _K_LOOKAHEAD_MIN,
 _K_LOOKAHEAD_TIME, _K_COMFORT_JERK, _K_MAX_DECEL, _K_MAX_ACCEL, _K_MAX_JERK, _K_MAX_STEER, _K_MAX_STEER_RATE,
 _K_WHEELBASE) = range(15)


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ControllerState:
    t_ns: int = -1  # time of the previous step; -1 before the first
    speed_integral_mps: float = 0.0  # integral of the speed error [m/s * s * 1/s] in m/s units
    accel_cmd_mps2: float = 0.0  # previous (rate-limited) commands
    steer_cmd_rad: float = 0.0
    rejected_inputs: int = 0  # steps refused for non-finite ego or plan
    stale_plans: int = 0  # steps with no plan or a plan older than plan_timeout_s
    lateral_error_m: float = 0.0  # last tracking error, for logs
    # Derived from the last plan seen; left out of comparisons (it is a function of that plan).
    track: PlanTrack | None = field(default=None, compare=False, repr=False)
    # Derived from the vehicle and configuration of the last tracking step (the same two for a
    # whole run); left out of comparisons likewise.
    law: LawConstants | None = field(default=None, compare=False, repr=False)


def _finite_plan(plan: Plan) -> bool:
    """One sum per array: a finite total proves every element finite (an overflowing sum is refused
    too, which is the right answer for a plan that large).

    The five sums are five numpy calls; one compiled pass (``_plan_magnitude``) gives the same
    verdict wherever no sum can overflow, and the sums decide only the rest (a value beyond
    ``_NO_OVERFLOW_ABS`` in a finite plan, or arrays of another type than float64)."""
    if plan.t_s.shape[0] == 0:
        return False
    try:
        largest = _plan_magnitude(plan.t_s, plan.xy_m, plan.yaw_rad, plan.speed_mps, plan.accel_mps2)
    except TypeError:  # not the kernel's array types: the sums alone
        largest = math.inf
    if largest <= _NO_OVERFLOW_ABS:
        return True
    if math.isnan(largest):
        return False  # a NaN or inf element makes its array's sum, and the total, NaN or inf
    return math.isfinite(float(plan.xy_m.sum()) + float(plan.speed_mps.sum()) + float(plan.accel_mps2.sum())
                         + float(plan.yaw_rad.sum()) + float(plan.t_s.sum()))


# Below this magnitude no sum of fewer than 1e8 values (in any order of addition) can overflow.
_NO_OVERFLOW_ABS = 1e300
_PLAN_VALUES = types.Array(types.float64, 1, "A", readonly=True)


@kernel(types.float64(_PLAN_VALUES, types.Array(types.float64, 2, "A", readonly=True), _PLAN_VALUES, _PLAN_VALUES,
                      _PLAN_VALUES))
def _plan_magnitude(t_s, xy, yaw, speed, accel):
    """The largest magnitude in the plan's arrays; NaN as soon as one element is not finite."""
    largest = 0.0
    for values in (t_s, yaw, speed, accel):
        for v in values:
            if not math.isfinite(v):
                return math.nan
            largest = max(largest, abs(v))
    for i in range(xy.shape[0]):
        for j in range(xy.shape[1]):
            v = xy[i, j]
            if not math.isfinite(v):
                return math.nan
            largest = max(largest, abs(v))
    return largest


def plan_track(plan: Plan) -> PlanTrack:
    if not _finite_plan(plan):
        return PlanTrack(plan, False, _NO_TABLE, _NO_TABLE, _NO_TABLE, None)
    return PlanTrack(plan, True, _table(plan.t_s), _table(plan.speed_mps), _table(plan.accel_mps2),
                     track_path(plan.xy_m, float(plan.yaw_rad[-1])))


_NO_TABLE = np.empty(0)


def _table(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def _finite_pose(ego: EgoState) -> tuple[float, float, float] | None:
    """The ego's (x, y, yaw) as plain floats, or None when its pose or speed is not finite."""
    pose = ego.pose
    if pose.shape != (3,):
        return None
    x, y, yaw = pose.tolist()
    if math.isfinite(x) and math.isfinite(y) and math.isfinite(yaw) and math.isfinite(ego.speed_mps):
        return x, y, yaw
    return None


def _limit(state: ControllerState, accel_mps2: float, steer_rad: float, dt_s: float,
           vehicle: VehicleParams, jerk_mps3: float) -> tuple[float, float]:
    """Clamp to the actuator envelope, then rate-limit: jerk bounds the accel change per step.
    Runs every control step: clamps are conditional expressions, not min()/max() calls (a builtin
    call costs more than the comparison), each with min/max's exact result, ties and NaN included:
    ``min(x, y)`` is ``y if y < x else x``, ``max(x, y)`` is ``y if y > x else x``."""
    lo, hi = -vehicle.max_decel_mps2, vehicle.max_accel_mps2
    accel = lo if lo > accel_mps2 else accel_mps2
    accel = hi if hi < accel else accel
    max_jerk = vehicle.max_jerk_mps3
    da = (max_jerk if max_jerk < jerk_mps3 else jerk_mps3) * dt_s
    prev = state.accel_cmd_mps2
    lo, hi = prev - da, prev + da
    accel = lo if lo > accel else accel
    accel = hi if hi < accel else accel
    max_steer = vehicle.max_steer_rad
    steer = -max_steer if -max_steer > steer_rad else steer_rad
    steer = max_steer if max_steer < steer else steer
    ds = vehicle.max_steer_rate_rps * dt_s
    prev = state.steer_cmd_rad
    lo, hi = prev - ds, prev + ds
    steer = lo if lo > steer else steer
    steer = hi if hi < steer else steer
    return accel, steer


def _brake(state: ControllerState, t_ns: int, dt_s: float, vehicle: VehicleParams, cfg: ControllerConfig,
           track: PlanTrack | None, rejected: int = 0, stale: int = 0) -> tuple[ControllerState, ControlCommand]:
    """Controlled brake holding the current steering; the integrator is cleared so that a later
    valid plan starts from a clean speed loop."""
    accel, steer = _limit(state, -cfg.fallback_decel_mps2, state.steer_cmd_rad, dt_s, vehicle, vehicle.max_jerk_mps3)
    new_state = ControllerState(t_ns, 0.0, accel, steer, state.rejected_inputs + rejected,
                                state.stale_plans + stale, state.lateral_error_m, track, state.law)
    return new_state, ControlCommand(t_ns, accel, steer, -1, hazard=True)


_TABLE = types.Array(types.float64, 1, "C", readonly=True)
_F = types.float64
_OK, _INDEX_ERROR, _ZERO_DIVISION = 0.0, 1.0, 2.0  # how a law evaluation ended (the Python form's exceptions)


@kernel(types.UniTuple(_F, 2)(_F, _TABLE, _TABLE))
def _interp_checked(x, xs, fs):
    """np.interp for one point (ascending xs, clamped at both ends) in the former Python form's
    operations (tests/control/test_track_law.py): (how it ended, the value). Where that form
    raised (an index past ``fs``: a malformed plan) the caller raises the same exception."""
    n, m = xs.shape[0], fs.shape[0]
    if n == 0 or m == 0:
        return _INDEX_ERROR, 0.0
    if x <= xs[0]:
        return _OK, fs[0]
    if x >= xs[n - 1]:
        return _OK, fs[m - 1]
    lo, hi = 0, n  # bisect_right
    while lo < hi:
        mid = (lo + hi) // 2
        if x < xs[mid]:
            hi = mid
        else:
            lo = mid + 1
    j = lo - 1
    if xs[j] == x:
        return (_OK, fs[j]) if j < m else (_INDEX_ERROR, 0.0)
    if j + 1 >= m:
        return _INDEX_ERROR, 0.0
    den = xs[j + 1] - xs[j]
    if den == 0.0:
        return _ZERO_DIVISION, 0.0
    return _OK, (fs[j + 1] - fs[j]) / den * (x - xs[j]) + fs[j]


@kernel(types.UniTuple(_F, 5)(
    _TABLE, _TABLE, _TABLE, _VERTICES, types.float64[:, ::1], types.float64[::1], types.float64[::1],
    types.float64[::1], _F, types.float64[::1], types.boolean, *([_F] * 9)))
def _track_law(t_s, speed_ref, accel_ref, xy, seg, seg_len2, seg_len, cum, yaw_end, constants, emergency,
               t_rel_s, speed, dt_s, integral_prev, accel_prev, steer_prev, x, y, yaw):
    """One tracking step as one compiled call: (how it ended, accel, steer, speed integral, lateral
    error). The Python statements of ``_track_law_py`` in their order, as IEEE operations (the
    kernels' settings, core/jit.py): the same bits. ``constants``: ``law_constants``' array."""
    preview_s, kp, ki = constants[_K_PREVIEW], constants[_K_KP], constants[_K_KI]
    integral_limit, standstill_mps = constants[_K_INTEGRAL_LIMIT], constants[_K_STANDSTILL_SPEED]
    standstill_hold = constants[_K_STANDSTILL_HOLD]
    lookahead_min, lookahead_time = constants[_K_LOOKAHEAD_MIN], constants[_K_LOOKAHEAD_TIME]
    max_decel, max_accel, max_jerk = constants[_K_MAX_DECEL], constants[_K_MAX_ACCEL], constants[_K_MAX_JERK]
    jerk = max_jerk if emergency else constants[_K_COMFORT_JERK]
    max_steer, max_steer_rate = constants[_K_MAX_STEER], constants[_K_MAX_STEER_RATE]
    wheelbase = constants[_K_WHEELBASE]
    done, v_ref = _interp_checked(t_rel_s, t_s, speed_ref)
    if done != _OK:
        return done, 0.0, 0.0, 0.0, 0.0
    done, a_ff = _interp_checked(t_rel_s + preview_s, t_s, accel_ref)
    if done != _OK:
        return done, 0.0, 0.0, 0.0, 0.0
    err = v_ref - speed
    integral = integral_prev + err * dt_s
    lim = integral_limit / (1e-9 if 1e-9 > ki else ki)
    integral = -lim if -lim > integral else integral
    integral = lim if lim < integral else integral
    accel = a_ff + kp * err + ki * integral
    hold_still = v_ref < standstill_mps and speed < standstill_mps and a_ff <= 0.0
    if hold_still:
        done, v_preview = _interp_checked(t_rel_s + preview_s, t_s, speed_ref)
        if done != _OK:
            return done, 0.0, 0.0, 0.0, 0.0
        hold_still = v_preview < standstill_mps
    if hold_still:
        hold = -standstill_hold
        accel = hold if hold < accel else accel
        integral = 0.0
    elif not (-max_decel < accel < max_accel):
        integral = integral_prev
    lookahead = lookahead_time * abs(speed)
    lookahead = lookahead if lookahead > lookahead_min else lookahead_min
    steer, lat_err = _pursue(xy, seg, seg_len2, seg_len, cum, yaw_end, x, y, yaw, lookahead, wheelbase)
    # _limit
    lo, hi = -max_decel, max_accel
    accel = lo if lo > accel else accel
    accel = hi if hi < accel else accel
    da = (max_jerk if max_jerk < jerk else jerk) * dt_s
    lo, hi = accel_prev - da, accel_prev + da
    accel = lo if lo > accel else accel
    accel = hi if hi < accel else accel
    steer = -max_steer if -max_steer > steer else steer
    steer = max_steer if max_steer < steer else steer
    ds = max_steer_rate * dt_s
    lo, hi = steer_prev - ds, steer_prev + ds
    steer = lo if lo > steer else steer
    steer = hi if hi < steer else steer
    return _OK, accel, steer, integral, lat_err


def control_step(state: ControllerState, plan: Plan | None, ego: EgoState, t_ns: int,
                 vehicle: VehicleParams, cfg: ControllerConfig) -> tuple[ControllerState, ControlCommand]:
    # Clamps below are conditional expressions with min()/max()'s exact results (see _limit).
    dt_s = cfg.nominal_period_s if state.t_ns < 0 else (t_ns - state.t_ns) * 1e-9
    # Time going backwards (or repeating) allows no command change at all rather than a jump.
    dt_s = 0.0 if 0.0 > dt_s else dt_s
    max_step_s = cfg.max_step_s
    dt_s = max_step_s if max_step_s < dt_s else dt_s
    track = state.track
    if plan is not None and (track is None or track.plan is not plan):
        track = plan_track(plan)
    pose = _finite_pose(ego)
    if pose is None or (plan is not None and not track.finite):
        return _brake(state, t_ns, dt_s, vehicle, cfg, track, rejected=1)
    if plan is None or (t_ns - plan.t_ns) * 1e-9 > cfg.plan_timeout_s:
        return _brake(state, t_ns, dt_s, vehicle, cfg, track, stale=1)

    # Longitudinal: speed reference now; feedforward previewed by the actuator lag (previewing the
    # speed too would bias the feedback by the planned speed change over the preview); PID with
    # anti-windup and a standstill hold; lateral: pure pursuit; then the actuator limits. One
    # compiled call (_track_law; its Python form is kept in tests/control/test_track_law.py).
    x, y, yaw = pose
    law = state.law
    if law is None or law.vehicle is not vehicle or law.cfg is not cfg:
        law = law_constants(vehicle, cfg)
    path = track.path
    done, accel, steer, integral, lat_err = _track_law(
        track.t_s, track.speed_mps, track.accel_mps2, path.xy_m, path.seg_m, path.seg_len2_m2, path.seg_len_m,
        path.cum_m, path.yaw_end_rad, law.values, True if plan.emergency else False, (t_ns - plan.t_ns) * 1e-9, float(ego.speed_mps),
        dt_s, state.speed_integral_mps, state.accel_cmd_mps2, state.steer_cmd_rad, x, y, yaw)
    if done == _INDEX_ERROR:  # a malformed plan: the exception its Python form raised
        raise IndexError("list index out of range")
    if done == _ZERO_DIVISION:
        raise ZeroDivisionError("float division by zero")
    new_state = ControllerState(t_ns, integral, accel, steer, state.rejected_inputs, state.stale_plans, lat_err,
                                track, law)
    return new_state, ControlCommand(t_ns, accel, steer, plan.t_ns, plan.emergency)
