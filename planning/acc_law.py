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
    whether the lead rather than the cruise demand sets it.

    Runs ~60 times per lattice plan (three lane roll-outs): clamps are conditional expressions, not
    min()/max() calls (a builtin call costs more than the comparison). Each keeps min/max's result,
    ties and NaN included: ``min(x, y)`` is ``y if y < x else x``, ``max(x, y)`` is ``y if y > x else x``."""
    a = g.k_speed_1ps * (v_target - v)
    lo = -g.cruise_decel_mps2
    a = lo if lo > a else a
    hi = g.comfort_accel_mps2
    a = hi if hi < a else a
    if stop_decel_mps2 > 0.0 and v > 0.0:
        a = -stop_decel_mps2 if -stop_decel_mps2 < a else a
    if not math.isfinite(gap_m):
        return a, False, False
    closing = v - v_lead
    closing = 0.0 if 0.0 > closing else closing
    safe_gap = gap_m - g.standstill_gap_m - closing * g.reaction_s
    if safe_gap > 0.0:
        b_safe = (closing * closing) / (2.0 * safe_gap)
    else:
        # Inside the standstill spacing but not closing (a close cut-in at equal speed): the
        # follow law opens the gap comfortably; only closing in calls for emergency braking.
        b_safe = 0.0 if closing == 0.0 else math.inf
    brake_threshold = g.lead_brake_threshold_mps2
    if a_lead < -brake_threshold or v_lead < 0.5:
        lead_decel = -a_lead
        lead_decel = brake_threshold if brake_threshold > lead_decel else lead_decel
        stop_gap = safe_gap + v_lead * v_lead / (2.0 * lead_decel)
        if v > 0.0:
            b_stop = v * v / (2.0 * stop_gap) if stop_gap > 0.0 else math.inf
            b_safe = b_stop if b_stop > b_safe else b_safe
    comfort_decel = g.comfort_decel_mps2
    if b_safe > comfort_decel:
        max_decel = g.max_decel_mps2
        return -(max_decel if max_decel < b_safe else b_safe), True, True
    # Linear constant-time-gap law near equilibrium; far from the lead the allowed closing speed
    # follows sqrt(2 b e), the speed from which an approach deceleration b reaches the desired
    # spacing, so closing in from afar neither chatters nor brakes harder than needed.
    k_rel = g.k_rel_speed_1ps
    e_lin = gap_m - (g.standstill_gap_m + g.time_gap_s * v)
    a_follow = k_rel * (v_lead - v) + g.k_gap_1ps2 * e_lin
    if e_lin > 0.0:
        e_lead = gap_m - (g.standstill_gap_m + g.time_gap_s * v_lead)
        v_ref = v_lead + math.sqrt(2.0 * g.approach_decel_mps2 * (0.0 if 0.0 > e_lead else e_lead))
        a_approach = k_rel * (v_ref - v)
        a_follow = a_approach if a_approach < a_follow else a_follow
    if b_safe > 0.5 * comfort_decel:
        a_follow = -b_safe if -b_safe < a_follow else a_follow  # getting critical: brake at least what safety needs
    a_out = a_follow if a_follow < a else a
    return (-comfort_decel if -comfort_decel > a_out else a_out), False, a_follow < a


def rollout(v0: float, a0: float, v_target: float, gap0_m: float, v_lead0: float, a_lead: float,
            stop_decel_mps2: float, g: AccGains, dt_s: float, steps: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """Distance, speed and acceleration per step (steps,) from re-applying the law as ego and lead
    (constant deceleration until it stops) move on; and whether step 0 is an emergency and is set
    by the lead."""
    s, v, a, emergency0, following0 = rollout_lists(v0, a0, v_target, gap0_m, v_lead0, a_lead, stop_decel_mps2,
                                                    g, dt_s, steps)
    return np.array(s), np.array(v), np.array(a), emergency0, following0


def rollout_lists(v0: float, a0: float, v_target: float, gap0_m: float, v_lead0: float, a_lead: float,
                  stop_decel_mps2: float, g: AccGains, dt_s: float, steps: int
                  ) -> tuple[list[float], list[float], list[float], bool, bool]:
    """``rollout`` with the profiles as Python lists, for callers that gather several roll-outs
    into one array. Free road (infinite gap) takes a branch-free loop: the law is then the cruise
    term. Clamps are conditional expressions with min()/max()'s exact results (see desired_accel)."""
    s_out, v_out, a_out = [0.0] * steps, [0.0] * steps, [0.0] * steps
    s, v, a = 0.0, 0.0 if 0.0 > v0 else v0, a0
    emergency0 = following0 = False
    if not math.isfinite(gap0_m):
        hi, lo = g.comfort_accel_mps2, -g.cruise_decel_mps2
        k, da = g.k_speed_1ps, g.comfort_jerk_mps3 * dt_s
        stopping = stop_decel_mps2 > 0.0
        for i in range(steps):
            a_des = k * (v_target - v)
            a_des = lo if lo > a_des else a_des
            a_des = hi if hi < a_des else a_des
            if stopping and v > 0.0 and -stop_decel_mps2 < a_des:
                a_des = -stop_decel_mps2
            step = a_des - a
            step = -da if -da > step else step
            a += da if da < step else step
            if v <= 0.0 and a < 0.0:
                a = 0.0  # a stopped car does not reverse
            s_out[i], v_out[i], a_out[i] = s, v, a
            v_next = v + a * dt_s
            v_next = 0.0 if 0.0 > v_next else v_next
            s += 0.5 * (v + v_next) * dt_s
            v = v_next
        return s_out, v_out, a_out, False, False
    gap, vl, al = gap0_m, v_lead0, a_lead
    da_comfort, da_emergency = g.comfort_jerk_mps3 * dt_s, g.emergency_jerk_mps3 * dt_s
    for i in range(steps):
        a_des, emergency, following = desired_accel(v, v_target, gap, vl, al, stop_decel_mps2, g)
        if i == 0:
            emergency0, following0 = emergency, following
        da = da_emergency if emergency else da_comfort
        step = a_des - a
        step = -da if -da > step else step
        a += da if da < step else step
        if v <= 0.0 and a < 0.0:
            a = 0.0
        s_out[i], v_out[i], a_out[i] = s, v, a
        v_next = v + a * dt_s
        v_next = 0.0 if 0.0 > v_next else v_next
        ds = 0.5 * (v + v_next) * dt_s
        vl_next = vl + al * dt_s
        vl_next = 0.0 if 0.0 > vl_next else vl_next
        gap += 0.5 * (vl + vl_next) * dt_s - ds
        if vl_next == 0.0:
            al = 0.0
        s, v, vl = s + ds, v_next, vl_next
    return s_out, v_out, a_out, emergency0, following0
