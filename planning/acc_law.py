"""Adaptive-cruise acceleration law and its jerk-limited roll-out over the plan horizon.

Three demands, the most restrictive wins:
- cruise: proportional speed error towards the target speed (limit, cap, curve preview);
- follow: linear spacing/relative-speed law around the time-gap spacing s0 + h v (well damped near
  equilibrium), plus the constant deceleration that reaches the lead's speed at the desired spacing
  (smooth approach to slower or stopped vehicles from far away, where the linear law is blind);
- safety: the deceleration needed to keep the standstill spacing s0 if the lead keeps its speed or
  brakes to a stop at its estimated deceleration, after a reaction delay. If that exceeds the
  comfortable deceleration the plan brakes harder, up to the emergency limit, and is flagged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class AccGains:
    standstill_gap_m: float
    time_gap_s: float
    reaction_s: float
    k_speed_1ps: float  # cruise speed-error gain
    k_rel_speed_1ps: float  # follow relative-speed gain
    k_gap_1ps2: float  # follow spacing-error gain
    comfort_accel_mps2: float
    comfort_decel_mps2: float
    approach_decel_mps2: float
    cruise_decel_mps2: float
    max_decel_mps2: float
    comfort_jerk_mps3: float
    emergency_jerk_mps3: float
    lead_brake_threshold_mps2: float


def desired_accel(v: float, v_target: float, gap_m: float, v_lead: float, a_lead: float,
                  stop_decel_mps2: float, g: AccGains) -> tuple[float, bool, bool]:
    """Desired acceleration, whether it is an emergency (needs more than comfortable braking) and
    whether the lead rather than the cruise demand sets it."""
    a = min(max(g.k_speed_1ps * (v_target - v), -g.cruise_decel_mps2), g.comfort_accel_mps2)
    if stop_decel_mps2 > 0.0 and v > 0.0:
        a = min(a, -stop_decel_mps2)
    if not math.isfinite(gap_m):
        return a, False, False
    closing = max(v - v_lead, 0.0)
    safe_gap = gap_m - g.standstill_gap_m - closing * g.reaction_s
    if safe_gap > 0.0:
        b_safe = (closing * closing) / (2.0 * safe_gap)
    else:
        # Inside the standstill spacing but not closing (a close cut-in at equal speed): the
        # follow law opens the gap comfortably; only closing in calls for emergency braking.
        b_safe = 0.0 if closing == 0.0 else math.inf
    if a_lead < -g.lead_brake_threshold_mps2 or v_lead < 0.5:
        lead_stop_m = v_lead * v_lead / (2.0 * max(-a_lead, g.lead_brake_threshold_mps2))
        stop_gap = safe_gap + lead_stop_m
        if v > 0.0:
            b_safe = max(b_safe, v * v / (2.0 * stop_gap) if stop_gap > 0.0 else math.inf)
    if b_safe > g.comfort_decel_mps2:
        return -min(b_safe, g.max_decel_mps2), True, True
    # Linear constant-time-gap law near equilibrium; far from the lead the allowed closing speed
    # follows sqrt(2 b e), the speed from which an approach deceleration b reaches the desired
    # spacing, so closing in from afar neither chatters nor brakes harder than needed.
    e_lin = gap_m - (g.standstill_gap_m + g.time_gap_s * v)
    a_follow = g.k_rel_speed_1ps * (v_lead - v) + g.k_gap_1ps2 * e_lin
    e_lead = gap_m - (g.standstill_gap_m + g.time_gap_s * v_lead)
    if e_lin > 0.0:
        v_ref = v_lead + math.sqrt(2.0 * g.approach_decel_mps2 * max(e_lead, 0.0))
        a_follow = min(a_follow, g.k_rel_speed_1ps * (v_ref - v))
    if b_safe > 0.5 * g.comfort_decel_mps2:
        a_follow = min(a_follow, -b_safe)  # getting critical: brake at least what safety needs
    return max(min(a, a_follow), -g.comfort_decel_mps2), False, a_follow < a


def rollout(v0: float, a0: float, v_target: float, gap0_m: float, v_lead0: float, a_lead: float,
            stop_decel_mps2: float, g: AccGains, dt_s: float, steps: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """Distance, speed and acceleration per step (steps,) from re-applying the law as ego and lead
    (constant deceleration until it stops) move on; and whether step 0 is an emergency and is set
    by the lead. Free road (infinite gap) takes a branch-free loop: the law is then the cruise term."""
    s_out, v_out, a_out = [0.0] * steps, [0.0] * steps, [0.0] * steps
    s, v, a = 0.0, max(v0, 0.0), a0
    emergency0 = following0 = False
    if not math.isfinite(gap0_m):
        hi, lo = g.comfort_accel_mps2, -g.cruise_decel_mps2
        k, da = g.k_speed_1ps, g.comfort_jerk_mps3 * dt_s
        stopping = stop_decel_mps2 > 0.0
        for i in range(steps):
            a_des = min(max(k * (v_target - v), lo), hi)
            if stopping and v > 0.0:
                a_des = min(a_des, -stop_decel_mps2)
            a += min(max(a_des - a, -da), da)
            if v <= 0.0 and a < 0.0:
                a = 0.0  # a stopped car does not reverse
            s_out[i], v_out[i], a_out[i] = s, v, a
            v_next = max(v + a * dt_s, 0.0)
            s += 0.5 * (v + v_next) * dt_s
            v = v_next
        return np.array(s_out), np.array(v_out), np.array(a_out), False, False
    gap, vl, al = gap0_m, v_lead0, a_lead
    for i in range(steps):
        a_des, emergency, following = desired_accel(v, v_target, gap, vl, al, stop_decel_mps2, g)
        if i == 0:
            emergency0, following0 = emergency, following
        jerk = g.emergency_jerk_mps3 if emergency else g.comfort_jerk_mps3
        a += min(max(a_des - a, -jerk * dt_s), jerk * dt_s)
        if v <= 0.0 and a < 0.0:
            a = 0.0
        s_out[i], v_out[i], a_out[i] = s, v, a
        v_next = max(v + a * dt_s, 0.0)
        ds = 0.5 * (v + v_next) * dt_s
        vl_next = max(vl + al * dt_s, 0.0)
        gap += 0.5 * (vl + vl_next) * dt_s - ds
        if vl_next == 0.0:
            al = 0.0
        s, v, vl = s + ds, v_next, vl_next
    return np.array(s_out), np.array(v_out), np.array(a_out), emergency0, following0
