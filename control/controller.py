"""Plan-tracking controller at 100 Hz: pure-pursuit steering, speed PID with acceleration feedforward,
actuator limits, and a controlled brake whenever the plan cannot be trusted.

Pure step: ``control_step(state, plan, ego, t_ns, vehicle, cfg) -> (state, command)``.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
from numba import types

from control.pure_pursuit import TrackPath, pure_pursuit_steer, track_path
from core.config import rng
from core.jit import kernel
from core.messages import ControlCommand, EgoState, Plan
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


@dataclass(frozen=True, slots=True)
class PlanTrack:
    """What the controller derives from a plan once and reuses for every step that tracks it (a plan
    lives for about ten control steps): its finiteness verdict, its time tables as plain floats
    for scalar interpolation, and its path geometry."""

    plan: Plan  # the plan these were derived from (compared by identity)
    finite: bool
    t_s: list[float]
    speed_mps: list[float]
    accel_mps2: list[float]
    path: TrackPath | None  # None when the plan is not finite


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
        return PlanTrack(plan, False, [], [], [], None)
    return PlanTrack(plan, True, plan.t_s.tolist(), plan.speed_mps.tolist(), plan.accel_mps2.tolist(),
                     track_path(plan.xy_m, float(plan.yaw_rad[-1])))


def interp(x: float, xs: list[float], fs: list[float]) -> float:
    """np.interp for one point on plain floats (ascending xs, clamped at both ends): a numpy call
    costs more than this whole lookup on a 50-sample plan."""
    if x <= xs[0]:
        return fs[0]
    if x >= xs[-1]:
        return fs[-1]
    j = bisect_right(xs, x) - 1
    if xs[j] == x:
        return fs[j]
    return (fs[j + 1] - fs[j]) / (xs[j + 1] - xs[j]) * (x - xs[j]) + fs[j]


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
                                state.stale_plans + stale, state.lateral_error_m, track)
    return new_state, ControlCommand(t_ns, accel, steer, -1, hazard=True)


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
    # speed too would bias the feedback by the planned speed change over the preview).
    t_rel_s = (t_ns - plan.t_ns) * 1e-9
    v_ref = interp(t_rel_s, track.t_s, track.speed_mps)
    a_ff = interp(t_rel_s + cfg.accel_preview_s, track.t_s, track.accel_mps2)
    speed = float(ego.speed_mps)
    err = v_ref - speed
    integral = state.speed_integral_mps + err * dt_s
    ki = cfg.speed_ki_1ps2
    lim = cfg.integral_limit_mps2 / (1e-9 if 1e-9 > ki else ki)
    integral = -lim if -lim > integral else integral
    integral = lim if lim < integral else integral
    accel = a_ff + cfg.speed_kp_1ps * err + ki * integral
    standstill_mps = cfg.standstill_speed_mps
    if (v_ref < standstill_mps and speed < standstill_mps and a_ff <= 0.0
            and interp(t_rel_s + cfg.accel_preview_s, track.t_s, track.speed_mps) < standstill_mps):
        # Hold the car at standstill instead of letting the PID dither around zero speed, but only
        # while the plan stays still: a plan pulling away starts at 0 m/s and is still under the
        # threshold at the next replan, so holding on the speed now alone would never let go.
        hold = -cfg.standstill_hold_mps2
        accel = hold if hold < accel else accel
        integral = 0.0
    elif not (-vehicle.max_decel_mps2 < accel < vehicle.max_accel_mps2):
        integral = state.speed_integral_mps  # anti-windup: freeze while saturated

    # Lateral.
    lookahead_min_m, lookahead_m = cfg.lookahead_min_m, cfg.lookahead_time_s * abs(speed)
    lookahead_m = lookahead_m if lookahead_m > lookahead_min_m else lookahead_min_m
    x, y, yaw = pose
    steer, lat_err = pure_pursuit_steer(track.path, x, y, yaw, lookahead_m, vehicle.wheelbase_m)
    jerk = vehicle.max_jerk_mps3 if plan.emergency else cfg.comfort_jerk_mps3
    accel, steer = _limit(state, accel, steer, dt_s, vehicle, jerk)
    new_state = ControllerState(t_ns, integral, accel, steer, state.rejected_inputs, state.stale_plans, lat_err,
                                track)
    return new_state, ControlCommand(t_ns, accel, steer, plan.t_ns, plan.emergency)
