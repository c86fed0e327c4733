"""The RSS rule of lane-change candidates (ObstacleTerms.unsafe_following), against closed form."""
from __future__ import annotations

import numpy as np

from planning.lattice_obstacles import obstacle_terms
from planning.prediction import Prediction

T = np.arange(51) * 0.1
REACTION_S, EGO_BRAKE, OBJECT_BRAKE = 0.5, 6.0, 8.0
V = 20.0  # ego and object speed [m/s]
# Safe distance at equal speeds: v * reaction + v^2 / (2 b_ego) - v^2 / (2 b_object) = 18.33 m.
SAFE_GAP_M = V * REACTION_S + V * V / (2 * EGO_BRAKE) - V * V / (2 * OBJECT_BRAKE)


def _terms():
    """One car (4.6 m long) ahead in the ego's lane at 20 m/s, rear at 47.7 m when t = 0."""
    pred = Prediction(T, (50.0 + V * T)[None, :], np.zeros((1, 51)), np.full((1, 51), 0.3),
                      np.full((1, 51), 0.3), np.array([4.6]), np.array([1.9]), np.zeros(1, np.int8))
    lat = np.zeros((1, 1, 51))  # the ego stays in the lane: it overlaps the car laterally throughout
    obs = obstacle_terms(pred, lat, 4.6, 1.9, 1.0, 0.2, 1.0, np.zeros(1, bool), OBJECT_BRAKE)
    return obs, np.broadcast_to(obs.lat_overlap[0, 0], (4, 1, 51))


def test_safe_gap_kept_passes_and_closing_below_it_fails():
    obs, lat_overlap = _terms()
    rear0 = 50.0 - 2.3
    front = np.stack([
        rear0 - (SAFE_GAP_M + 1.0) + V * T,  # 1 m beyond the safe gap throughout
        rear0 - (SAFE_GAP_M + 1.0) + V * T + 0.5 * 1.0 * T ** 2,  # accelerates into it at 1 m/s^2
        rear0 - (SAFE_GAP_M - 3.0) + V * T,  # 3 m inside the safe gap from the start, holding it
        rear0 - (SAFE_GAP_M - 3.0) + V * T + 0.5 * 1.0 * T ** 2,  # inside and closing further
    ])
    v = np.stack([np.full(51, V), V + T, np.full(51, V), V + T])
    unsafe = obs.unsafe_following(front, v, lat_overlap, REACTION_S, EGO_BRAKE)
    # Rows 1: a safe gap made unsafe. Rows 2 and 3: already unsafe now, the rule does not bind there
    # (leaving the lane is the escape; the collision check judges it).
    assert unsafe.tolist() == [False, True, False, False]


def test_object_beside_or_behind_does_not_count():
    obs, lat_overlap = _terms()
    # The ego's front 1 m past the car's rear (beside it): not "behind too close", whatever the speed.
    front = (50.0 - 2.3 + 1.0 + V * T)[None, :]
    assert not obs.unsafe_following(front, np.full((1, 51), V + 5.0), lat_overlap[:1], REACTION_S,
                                    EGO_BRAKE)[0]


def test_no_lateral_overlap_no_constraint():
    obs, lat_overlap = _terms()
    front = (50.0 - 2.3 - (SAFE_GAP_M + 1.0) + V * T + 0.5 * T ** 2)[None, :]
    v = (V + T)[None, :]
    assert obs.unsafe_following(front, v, lat_overlap[:1], REACTION_S, EGO_BRAKE)[0]
    assert not obs.unsafe_following(front, v, np.zeros_like(lat_overlap[:1]), REACTION_S, EGO_BRAKE)[0]
