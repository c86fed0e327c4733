"""The compiled tracking law (control/controller.py _track_law) against the Python statements it
replaced, kept here as the reference: the same IEEE operations in the same order, so the commands,
the integral and the lateral error must be equal to the bit, and a malformed plan must raise
what the Python form raised."""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import replace

import numpy as np
import pytest

from control.controller import ControllerConfig, _track_law, law_constants, plan_track
from control.pure_pursuit import pure_pursuit_steer
from core.messages import Plan
from core.vehicle import VehicleParams


def _ref_interp(x: float, xs: list[float], fs: list[float]) -> float:
    if x <= xs[0]:
        return fs[0]
    if x >= xs[-1]:
        return fs[-1]
    j = bisect_right(xs, x) - 1
    if xs[j] == x:
        return fs[j]
    return (fs[j + 1] - fs[j]) / (xs[j + 1] - xs[j]) * (x - xs[j]) + fs[j]


def _ref_law(track, t_rel_s, speed, dt_s, integral_prev, accel_prev, steer_prev, x, y, yaw, emergency,
             vehicle: VehicleParams, cfg: ControllerConfig):
    t_s, speed_ref, accel_ref = track.t_s.tolist(), track.speed_mps.tolist(), track.accel_mps2.tolist()
    v_ref = _ref_interp(t_rel_s, t_s, speed_ref)
    a_ff = _ref_interp(t_rel_s + cfg.accel_preview_s, t_s, accel_ref)
    err = v_ref - speed
    integral = integral_prev + err * dt_s
    lim = cfg.integral_limit_mps2 / max(cfg.speed_ki_1ps2, 1e-9)
    integral = min(max(integral, -lim), lim)
    accel = a_ff + cfg.speed_kp_1ps * err + cfg.speed_ki_1ps2 * integral
    if (v_ref < cfg.standstill_speed_mps and speed < cfg.standstill_speed_mps and a_ff <= 0.0
            and _ref_interp(t_rel_s + cfg.accel_preview_s, t_s, speed_ref) < cfg.standstill_speed_mps):
        accel = min(accel, -cfg.standstill_hold_mps2)
        integral = 0.0
    elif not (-vehicle.max_decel_mps2 < accel < vehicle.max_accel_mps2):
        integral = integral_prev
    lookahead_m = max(cfg.lookahead_min_m, cfg.lookahead_time_s * abs(speed))
    steer, lat_err = pure_pursuit_steer(track.path, x, y, yaw, lookahead_m, vehicle.wheelbase_m)
    jerk = vehicle.max_jerk_mps3 if emergency else cfg.comfort_jerk_mps3
    accel = min(max(accel, -vehicle.max_decel_mps2), vehicle.max_accel_mps2)
    da = min(vehicle.max_jerk_mps3, jerk) * dt_s
    accel = min(max(accel, accel_prev - da), accel_prev + da)
    steer = min(max(steer, -vehicle.max_steer_rad), vehicle.max_steer_rad)
    ds = vehicle.max_steer_rate_rps * dt_s
    steer = min(max(steer, steer_prev - ds), steer_prev + ds)
    return accel, steer, integral, lat_err


def _law(track, t_rel_s, speed, dt_s, integral_prev, accel_prev, steer_prev, x, y, yaw, emergency,
         vehicle: VehicleParams, cfg: ControllerConfig):
    path = track.path
    done, *out = _track_law(
        track.t_s, track.speed_mps, track.accel_mps2, path.xy_m, path.seg_m, path.seg_len2_m2, path.seg_len_m,
        path.cum_m, path.yaw_end_rad, law_constants(vehicle, cfg).values, emergency, t_rel_s, speed, dt_s,
        integral_prev, accel_prev, steer_prev, x, y, yaw)
    if done == 1.0:
        raise IndexError("list index out of range")
    if done == 2.0:
        raise ZeroDivisionError("float division by zero")
    return tuple(out)


def _bits(values) -> tuple[bytes, ...]:
    return tuple(np.float64(v).tobytes() for v in values)


def _plan(rng: np.random.Generator) -> Plan:
    k = int(rng.choice([1, 2, 5, 51]))
    t = np.arange(k) * 0.1
    if rng.random() < 0.2:
        t = np.round(t + rng.normal(0.0, 0.05, k), 1)  # unsorted or repeated times: a malformed plan
    v0 = float(rng.choice([0.0, 0.1, 5.0, 25.0]))
    accel = rng.choice([0.0, -3.0, 1.0]) + rng.normal(0.0, 0.5, k) * (rng.random() < 0.5)
    speed = np.maximum(v0 + np.cumsum(accel) * 0.1, 0.0) * (rng.random() > 0.2)
    heading = rng.uniform(-math.pi, math.pi) + np.cumsum(rng.normal(0.0, 0.02, k))
    step = speed * 0.1 + 0.01
    xy = np.cumsum(np.stack([step * np.cos(heading), step * np.sin(heading)], 1), axis=0)
    return Plan(0, t, xy, heading, speed, accel, np.zeros(k), emergency=bool(rng.random() < 0.3))


def _random_constants(rng: np.random.Generator) -> tuple[VehicleParams, ControllerConfig]:
    """The defaults, or every constant the law reads drawn anew (each distinct, so that a constant
    read in another one's place shows)."""
    if rng.random() < 0.3:
        return VehicleParams(), ControllerConfig()
    vehicle = replace(VehicleParams(), **{name: float(rng.uniform(lo, hi)) for name, lo, hi in (
        ("max_decel_mps2", 1.0, 12.0), ("max_accel_mps2", 0.5, 5.0), ("max_jerk_mps3", 1.0, 30.0),
        ("max_steer_rad", 0.1, 1.0), ("max_steer_rate_rps", 0.1, 3.0), ("wheelbase_m", 2.0, 4.0))})
    cfg = replace(ControllerConfig(), **{name: float(rng.uniform(lo, hi)) for name, lo, hi in (
        ("accel_preview_s", 0.0, 0.5), ("speed_kp_1ps", 0.1, 2.0), ("speed_ki_1ps2", 0.0, 0.5),
        ("integral_limit_mps2", 0.1, 2.0), ("standstill_speed_mps", 0.05, 1.0), ("standstill_hold_mps2", 0.1, 3.0),
        ("lookahead_min_m", 1.0, 10.0), ("lookahead_time_s", 0.2, 2.0), ("comfort_jerk_mps3", 0.5, 20.0))})
    return vehicle, cfg


def test_track_law_equals_reference_bits():
    rng = np.random.default_rng(31)
    checked = raised = 0
    for _ in range(600):
        vehicle, cfg = _random_constants(rng)
        plan = _plan(rng)
        track = plan_track(plan)
        for _ in range(10):
            x, y = (plan.xy_m[int(rng.integers(len(plan.xy_m)))] + rng.normal(0.0, 0.5, 2)).tolist()
            args = (track, float(rng.choice([0.0, 0.05, rng.uniform(0.0, 6.0)])),
                    float(rng.choice([0.0, 0.1, rng.uniform(0.0, 30.0)])), float(rng.choice([0.0, 0.01, 0.1])),
                    float(rng.normal(0.0, 2.0)), float(rng.normal(0.0, 3.0)), float(rng.normal(0.0, 0.3)),
                    x, y, float(rng.uniform(-math.pi, math.pi)), plan.emergency, vehicle, cfg)
            try:
                expected = _ref_law(*args)
            except (IndexError, ZeroDivisionError) as exc:
                with pytest.raises(type(exc), match=str(exc)):
                    _law(*args)
                raised += 1
                continue
            assert _bits(_law(*args)) == _bits(expected), args
            checked += 1
    assert checked > 4000


def test_a_malformed_plan_raises_what_the_python_form_raised():
    """Unsorted, repeated times and tables shorter than the times: where the Python form indexed past
    a table the stage reported the exception; so must the kernel. (A division by zero cannot
    happen: bisect_right leaves xs[j] <= x < xs[j + 1] even on unsorted times; the kernel checks it
    anyway.)"""
    rng = np.random.default_rng(37)
    vehicle, cfg = VehicleParams(), ControllerConfig()
    outcomes = {"value": 0, "IndexError": 0}
    for _ in range(3000):
        k = int(rng.integers(2, 7))
        t = rng.choice([0.0, 0.5, 1.0, 1.5], k)
        speed, accel = rng.uniform(0.0, 5.0, k - int(rng.integers(0, 2))), rng.uniform(-1.0, 1.0, k)
        xy = np.stack([np.arange(k) * 1.0, np.zeros(k)], 1)
        track = plan_track(Plan(0, t, xy, np.zeros(k), speed, accel, np.zeros(k)))
        args = (track, float(rng.uniform(-0.2, 1.8)), 1.0, 0.01, 0.0, 0.0, 0.0, 0.5, 0.1, 0.0, False, vehicle, cfg)
        try:
            expected = _ref_law(*args)
        except (IndexError, ZeroDivisionError) as exc:
            with pytest.raises(type(exc), match=str(exc)):
                _law(*args)
            outcomes[type(exc).__name__] += 1
            continue
        assert _bits(_law(*args)) == _bits(expected), args
        outcomes["value"] += 1
    assert min(outcomes.values()) > 20, outcomes
