"""Scripted actors: the scenario's cut-in, hard-braking, stopped and placed vehicles.

Scripted actors share the traffic arrays (they are rows of the same Fleet) so that traffic and the
ego see them as ordinary vehicles; from their trigger time on, these rules override what IDM and
MOBIL would have them do.
"""
from __future__ import annotations

import math

import numpy as np

from core.messages import LABEL_NAMES
from sim.scenario import ActorConfig

KIND_TRAFFIC = 0  # IDM + MOBIL
KIND_VEHICLE = 1  # IDM in its lane at its configured speed, never changes lanes
KIND_CUT_IN = 2  # IDM; at the trigger, a lateral move into target_lane over lane_change_duration_s
KIND_HARD_BRAKE = 3  # IDM; from the trigger, decel_mps2 until standstill
KIND_STOPPED = 4  # standing still for the whole run
KIND_CODES = {"vehicle": KIND_VEHICLE, "cut_in": KIND_CUT_IN, "hard_brake": KIND_HARD_BRAKE,
              "stopped": KIND_STOPPED}

MIN_DESIRED_SPEED_MPS = 0.1  # IDM divides by the desired speed


def actor_columns(actors: tuple[ActorConfig, ...]) -> dict[str, np.ndarray]:
    """Scenario actors as Fleet columns (ids and colours are the world's business)."""
    def col(fn, dtype):
        return np.array([fn(a) for a in actors], dtype=dtype).reshape(len(actors))

    kind = col(lambda a: KIND_CODES[a.kind], np.int8)
    speed = col(lambda a: a.speed_mps, np.float64)
    return {
        "kind": kind,
        "s_m": col(lambda a: a.s_m, np.float64),
        "lane": col(lambda a: a.lane, np.int64),
        "v_mps": np.where(kind == KIND_STOPPED, 0.0, speed),
        "v0_mps": np.maximum(speed, MIN_DESIRED_SPEED_MPS),
        "length_m": col(lambda a: a.length_m, np.float64),
        "width_m": col(lambda a: a.width_m, np.float64),
        "height_m": col(lambda a: a.height_m, np.float64),
        "labels": col(lambda a: LABEL_NAMES.index(a.label), np.int16),
        "trigger_t_s": col(lambda a: a.trigger_t_s, np.float64),
        "decel_mps2": col(lambda a: a.decel_mps2, np.float64),
        "target_lane": col(lambda a: -1 if a.target_lane is None else a.target_lane, np.int64),
        "lane_change_s": col(lambda a: a.lane_change_duration_s, np.float64),
        "trigger_ttc_s": col(lambda a: np.nan if a.trigger_ttc_s is None else a.trigger_ttc_s, np.float64),
    }


def update_triggers(kind: np.ndarray, trigger_t_s: np.ndarray, triggered: np.ndarray,
                    t_s: float, trigger_ttc_s: np.ndarray, ttc_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(triggered now, newly triggered this step); traffic never triggers. An actor with a finite
    ``trigger_ttc_s`` also waits until the ego's time to collision with it, ``ttc_s`` (inf where
    the ego is not closing in on it from behind), has fallen to that."""
    ttc_ok = np.isnan(trigger_ttc_s) | (ttc_s <= trigger_ttc_s)
    now = triggered | ((kind != KIND_TRAFFIC) & (t_s >= trigger_t_s) & ttc_ok)
    return now, now & ~triggered


def next_trigger_t_s(kind: np.ndarray, trigger_t_s: np.ndarray, triggered: np.ndarray) -> float:
    """Earliest trigger time still to come (inf: none), so the world checks triggers only then. An
    actor waiting for its time to collision keeps its past trigger time here: the world checks it
    every step until it starts."""
    pending = (kind != KIND_TRAFFIC) & ~triggered
    return float(trigger_t_s[pending].min()) if pending.any() else math.inf


def time_to_collision_s(gap_m: np.ndarray, closing_mps: np.ndarray) -> np.ndarray:
    """Bumper gap over closing speed; inf where not closing or the gap is already gone (behind)."""
    closing = (closing_mps > 0.0) & (gap_m >= 0.0)
    return np.where(closing, gap_m / np.where(closing, closing_mps, 1.0), np.inf)


def scripted_accel(kind: np.ndarray, triggered: np.ndarray, v_mps: np.ndarray, decel_mps2: np.ndarray,
                   idm_accel_mps2: np.ndarray, dt_s: float) -> np.ndarray:
    """Acceleration after the scripts override IDM.

    A stopped actor holds still whatever is behind or ahead of it; a triggered hard-braker brakes
    at its deceleration, but never more than it takes to reach zero within this step.
    """
    braking = (kind == KIND_HARD_BRAKE) & triggered
    brake = -np.minimum(decel_mps2, v_mps / dt_s)
    accel = np.where(braking, brake, idm_accel_mps2)
    return np.where(kind == KIND_STOPPED, 0.0, accel)


def cut_in_starts(kind: np.ndarray, newly_triggered: np.ndarray) -> np.ndarray:
    return (kind == KIND_CUT_IN) & newly_triggered
