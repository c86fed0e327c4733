"""Adaptive-cruise acceleration law and its jerk-limited roll-out over the plan horizon.

Three demands, the most restrictive wins:
- cruise: proportional speed error towards the target speed (limit, cap, curve preview);
- follow: linear spacing/relative-speed law around the time-gap spacing s0 + h v (well damped near
  equilibrium), plus the constant deceleration that reaches the lead's speed at the desired spacing
  (smooth approach to slower or stopped vehicles from far away, where the linear law is blind);
- safety: the deceleration needed to keep the standstill spacing s0 if the lead keeps its speed or
  brakes to a stop at its estimated deceleration, after a reaction delay. If that exceeds the
  comfortable deceleration the plan brakes harder, up to the emergency limit, and is flagged;
- the road's end, where one is in play (planning/road_end.py): a stop at the fixed point s0 short
  of it at the approach deceleration (``_road_end_demand``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from core.jit import kernel


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

    def as_array(self) -> np.ndarray:
        """The gains in field order, the form the compiled law reads (indices ``_G_*`` below)."""
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)


# Positions of the gains in ``AccGains.as_array()`` (field order); compile-time constants in the
# kernels.
(_G_STANDSTILL_GAP, _G_TIME_GAP, _G_REACTION, _G_K_SPEED, _G_K_REL_SPEED, _G_K_GAP, _G_COMFORT_ACCEL,
 _G_COMFORT_DECEL, _G_APPROACH_DECEL, _G_CRUISE_DECEL, _G_MAX_DECEL, _G_COMFORT_JERK, _G_EMERGENCY_JERK,
 _G_LEAD_BRAKE_THRESHOLD) = range(14)

# Within this distance of its stopping point a stopped ego stays stopped rather than creeping up to
# it: a creep of a few centimetres starts and stops the car at the far end of the controller's
# resolution, and is worth nothing.
STOP_POINT_TOLERANCE_M = 0.5


@kernel("UniTuple(float64, 2)(float64, float64, float64[::1])")
def _road_end_demand(v, end_gap_m, g):
    """(acceleration the road's end asks for, deceleration that would stop the ego exactly at the
    end itself) at speed ``v`` with the front bumper ``end_gap_m`` before the end.

    The end is a fixed point, not a lead that may drive off: the ego stops standstill_gap short of
    it at a constant deceleration b = approach_decel. The speed from which b stops it in the e
    metres left is v_ref = sqrt(2 b e), and on that curve the deceleration that stops it in e,
    v^2 / (2 e), is b: that term is the feed-forward, k_rel (v_ref - v) the feedback. Far out
    (v well below v_ref) the sum is positive and the cruise demand governs; as v nears v_ref it
    turns into braking, which holds at b to the stop. (The follow law's time-gap term behind a
    stopped lead asks instead for a speed proportional to the spacing error: an exponential approach
    with a time constant of (k_rel + k_gap h) / k_gap, 6.5 s, the crawl of planning/road_end.py.)
    Within STOP_POINT_TOLERANCE_M of the point only the feedback's braking part acts, so a stopped
    ego stays stopped."""
    v = 0.0 if 0.0 > v else v
    if end_gap_m > 0.0:
        b_end = v * v / (2.0 * end_gap_m)
    else:
        b_end = math.inf if v > 0.0 else 0.0
    b, jerk = g[_G_APPROACH_DECEL], g[_G_COMFORT_JERK]
    # The release below stops the car b^3 / (6 j^2) further than braking at b to the end would
    # (0.21 m at 2 m/s^2, 2.5 m/s^3): the point is moved back by as much.
    e = end_gap_m - g[_G_STANDSTILL_GAP] - b * b * b / (6.0 * jerk * jerk)
    if e > 0.0:
        a = -(v * v) / (2.0 * e)
        feedback = g[_G_K_REL_SPEED] * (math.sqrt(2.0 * b * e) - v)
        if e > STOP_POINT_TOLERANCE_M or feedback < 0.0:
            a += feedback
    else:
        a = -math.inf if v > 0.0 else 0.0  # at or past the point: brake (clamped to comfort below)
    comfort_decel = g[_G_COMFORT_DECEL]
    a = -comfort_decel if -comfort_decel > a else a
    # Braking at b until the car stands would end in a step of b to zero: a jerk of b / dt, and the
    # lattice takes a roll-out with it for an emergency manoeuvre. Releasing the brake as the speed
    # runs out, at most sqrt(j v) at speed v, ramps the deceleration to zero at the stop at j / 2;
    # half the comfort jerk because the roll-outs step: a car stopping within one step dt then
    # brakes at most j dt, and the last step's jump to zero stays within the comfort jerk.
    release = -math.sqrt(jerk * v)
    return (release if release > a else a), b_end


@kernel("Tuple((float64, boolean, boolean))(float64, float64, float64, float64, float64, float64, float64,"
        " float64[::1])")
def _desired_accel(v, v_target, gap_m, v_lead, a_lead, end_gap_m, stop_decel_mps2, g):
    """``desired_accel`` on the gains array. Clamps are conditional expressions with min()/max()'s
    exact results, ties and NaN included: ``min(x, y)`` is ``y if y < x else x``, ``max(x, y)`` is
    ``y if y > x else x`` (the law was plain Python before it was compiled; the form stayed).
    With no road end in play (``end_gap_m`` infinite) it performs the operations it did before the
    road end had a demand of its own, in the same order: the same bits."""
    a = g[_G_K_SPEED] * (v_target - v)
    lo = -g[_G_CRUISE_DECEL]
    a = lo if lo > a else a
    hi = g[_G_COMFORT_ACCEL]
    a = hi if hi < a else a
    if stop_decel_mps2 > 0.0 and v > 0.0:
        a = -stop_decel_mps2 if -stop_decel_mps2 < a else a
    b_end, stopping = 0.0, False
    if end_gap_m < math.inf:
        a_end, b_end = _road_end_demand(v, end_gap_m, g)
        if a_end < a:
            a, stopping = a_end, True
    if not math.isfinite(gap_m):
        if b_end > g[_G_COMFORT_DECEL]:
            # Even the end itself, not only the point short of it, needs more than comfortable
            # braking: an emergency, as for a lead.
            max_decel = g[_G_MAX_DECEL]
            return -(max_decel if max_decel < b_end else b_end), True, True
        return a, False, stopping
    standstill_gap = g[_G_STANDSTILL_GAP]
    closing = v - v_lead
    closing = 0.0 if 0.0 > closing else closing
    safe_gap = gap_m - standstill_gap - closing * g[_G_REACTION]
    if safe_gap > 0.0:
        b_safe = (closing * closing) / (2.0 * safe_gap)
    else:
        # Inside the standstill spacing but not closing (a close cut-in at equal speed): the
        # follow law opens the gap comfortably; only closing in calls for emergency braking.
        b_safe = 0.0 if closing == 0.0 else math.inf
    brake_threshold = g[_G_LEAD_BRAKE_THRESHOLD]
    if a_lead < -brake_threshold or v_lead < 0.5:
        lead_decel = -a_lead
        lead_decel = brake_threshold if brake_threshold > lead_decel else lead_decel
        stop_gap = safe_gap + v_lead * v_lead / (2.0 * lead_decel)
        if v > 0.0:
            b_stop = v * v / (2.0 * stop_gap) if stop_gap > 0.0 else math.inf
            b_safe = b_stop if b_stop > b_safe else b_safe
    comfort_decel = g[_G_COMFORT_DECEL]
    if b_end > comfort_decel and not b_safe > b_end:
        b_safe = b_end  # the end needs more than the lead: the emergency brakes for the end
    if b_safe > comfort_decel:
        max_decel = g[_G_MAX_DECEL]
        return -(max_decel if max_decel < b_safe else b_safe), True, True
    # Linear constant-time-gap law near equilibrium; far from the lead the allowed closing speed
    # follows sqrt(2 b e), the speed from which an approach deceleration b reaches the desired
    # spacing, so closing in from afar neither chatters nor brakes harder than needed.
    k_rel = g[_G_K_REL_SPEED]
    time_gap = g[_G_TIME_GAP]
    e_lin = gap_m - (standstill_gap + time_gap * v)
    a_follow = k_rel * (v_lead - v) + g[_G_K_GAP] * e_lin
    if e_lin > 0.0:
        e_lead = gap_m - (standstill_gap + time_gap * v_lead)
        v_ref = v_lead + math.sqrt(2.0 * g[_G_APPROACH_DECEL] * (0.0 if 0.0 > e_lead else e_lead))
        a_approach = k_rel * (v_ref - v)
        a_follow = a_approach if a_approach < a_follow else a_follow
    if b_safe > 0.5 * comfort_decel:
        a_follow = -b_safe if -b_safe < a_follow else a_follow  # getting critical: brake at least what safety needs
    a_out = a_follow if a_follow < a else a
    return (-comfort_decel if -comfort_decel > a_out else a_out), False, a_follow < a or stopping


def desired_accel(v: float, v_target: float, gap_m: float, v_lead: float, a_lead: float,
                  stop_decel_mps2: float, g: AccGains, end_gap_m: float = math.inf) -> tuple[float, bool, bool]:
    """Desired acceleration [m/s^2], whether it is an emergency (needs more than comfortable
    braking) and whether the lead or the road's end (``end_gap_m`` from the front bumper, along the
    lane; infinite: not in play) rather than the cruise demand sets it."""
    return _desired_accel(v, v_target, gap_m, v_lead, a_lead, end_gap_m, stop_decel_mps2, g.as_array())


@kernel("Tuple((float64[:, ::1], boolean, boolean))(float64, float64, float64, float64, float64, float64,"
        " float64, float64, float64[::1], float64, int64)")
def _rollout(v0, a0, v_target, gap0_m, v_lead0, a_lead, end_gap0_m, stop_decel_mps2, g, dt_s, steps):
    """``rollout`` on the gains array: rows distance, speed, acceleration (3, steps)."""
    out = np.empty((3, steps))
    s, v, a = 0.0, 0.0 if 0.0 > v0 else v0, a0
    gap, vl, al = gap0_m, v_lead0, a_lead
    end_gap = end_gap0_m
    da_comfort, da_emergency = g[_G_COMFORT_JERK] * dt_s, g[_G_EMERGENCY_JERK] * dt_s
    emergency0 = following0 = False
    for i in range(steps):
        a_des, emergency, following = _desired_accel(v, v_target, gap, vl, al, end_gap, stop_decel_mps2, g)
        if i == 0:
            emergency0, following0 = emergency, following
        da = da_emergency if emergency else da_comfort
        step = a_des - a
        step = -da if -da > step else step
        a += da if da < step else step
        if v <= 0.0 and a < 0.0:
            a = 0.0  # a stopped car does not reverse
        out[0, i], out[1, i], out[2, i] = s, v, a
        v_next = v + a * dt_s
        v_next = 0.0 if 0.0 > v_next else v_next
        ds = 0.5 * (v + v_next) * dt_s
        # The lead (at an infinite gap: none, and the gap stays infinite) brakes at its
        # deceleration until it stops.
        vl_next = vl + al * dt_s
        vl_next = 0.0 if 0.0 > vl_next else vl_next
        gap += 0.5 * (vl + vl_next) * dt_s - ds
        end_gap -= ds  # the end stands (infinite stays infinite)
        if vl_next == 0.0:
            al = 0.0
        s, v, vl = s + ds, v_next, vl_next
    return out, emergency0, following0


def rollout(v0: float, a0: float, v_target: float, gap0_m: float, v_lead0: float, a_lead: float,
            stop_decel_mps2: float, g: AccGains, dt_s: float, steps: int, end_gap0_m: float = math.inf
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """Distance, speed and acceleration per step (steps,) from re-applying the law as ego and lead
    (constant deceleration until it stops) move on; and whether step 0 is an emergency and is set
    by the lead or the road's end (``end_gap0_m`` ahead of the front bumper, standing). The
    acceleration moves towards the law's demand at the comfort jerk (the emergency jerk while the
    law calls for emergency braking)."""
    profiles, emergency0, following0 = _rollout(v0, a0, v_target, gap0_m, v_lead0, a_lead, end_gap0_m,
                                                stop_decel_mps2, g.as_array(), dt_s, steps)
    return profiles[0], profiles[1], profiles[2], emergency0, following0


def rollout_profiles(v0: float, a0: float, v_target: float, gap0_m: float, v_lead0: float, a_lead: float,
                     stop_decel_mps2: float, gains: np.ndarray, dt_s: float, steps: int,
                     end_gap0_m: float = math.inf) -> tuple[np.ndarray, bool, bool]:
    """``rollout`` with the gains as ``AccGains.as_array()`` and the profiles as one (3, steps)
    array (distance, speed, acceleration), for callers that run several roll-outs per plan."""
    return _rollout(v0, a0, v_target, gap0_m, v_lead0, a_lead, end_gap0_m, stop_decel_mps2, gains, dt_s, steps)
