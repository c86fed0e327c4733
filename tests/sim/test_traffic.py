import numpy as np
import pytest

from sim.scenario import TrafficConfig
from sim.traffic import IdmParams, MobilParams, Neighbourhood, idm_accel, mobil_targets, nearest

P = IdmParams(accel_mps2=1.5, decel_mps2=2.0, time_gap_s=1.5, min_gap_m=2.0, delta=4.0, max_decel_mps2=9.0)
M = MobilParams(politeness=0.3, threshold_mps2=0.2, safe_decel_mps2=4.0)


def test_free_road_accel_matches_equation():
    v, v0 = np.array([0.0, 10.0, 20.0, 30.0]), 30.0
    expected = P.accel_mps2 * (1.0 - (v / v0) ** P.delta)
    np.testing.assert_allclose(idm_accel(v, v0, np.inf, 0.0, P), expected)


def test_equilibrium_gap_gives_zero_accel():
    v, v0 = 20.0, 30.0
    # Same speed as the leader: 0 = 1 - (v/v0)^d - ((s0 + vT)/s)^2  =>  s = (s0 + vT) / sqrt(1 - (v/v0)^d)
    s_eq = (P.min_gap_m + v * P.time_gap_s) / np.sqrt(1.0 - (v / v0) ** P.delta)
    assert float(idm_accel(v, v0, s_eq, 0.0, P)) == pytest.approx(0.0, abs=1e-12)
    assert float(idm_accel(v, v0, 0.9 * s_eq, 0.0, P)) < 0.0 < float(idm_accel(v, v0, 1.1 * s_eq, 0.0, P))


def test_approaching_brakes_harder_and_overlap_saturates():
    closing = float(idm_accel(20.0, 30.0, 40.0, 5.0, P))
    assert closing < float(idm_accel(20.0, 30.0, 40.0, 0.0, P))
    assert float(idm_accel(20.0, 30.0, -1.0, 0.0, P)) == -P.max_decel_mps2


def test_params_from_config():
    p = IdmParams.from_config(TrafficConfig(idm_time_gap_s=2.0))
    assert p.time_gap_s == 2.0 and p.min_gap_m == TrafficConfig().idm_min_gap_m


def test_nearest_respects_lanes_and_spans():
    s = np.array([0.0, 30.0, 50.0, -20.0])
    lo = np.array([0, 1, 0, 0])
    hi = np.array([0, 1, 1, 0])  # vehicle 2 straddles lanes 0 and 1
    active = np.ones(4, dtype=bool)
    lead, dl, foll, df = nearest(s[:1], lo[:1], hi[:1], s, lo, hi, active)
    assert (lead[0], dl[0], foll[0], df[0]) == (2, 50.0, 3, 20.0)
    _, dl, _, _ = nearest(np.array([60.0]), np.array([1]), np.array([1]), s, lo, hi, active)
    assert np.isinf(dl[0])


def scene(s, v, v0, lane):
    s, v, v0, lane = (np.asarray(x, dtype=float) for x in (s, v, v0, lane))
    lane = lane.astype(np.int64)
    return Neighbourhood(s_m=s, v_mps=v, v0_mps=v0, length_m=np.full(s.shape, 4.5), lane=lane, lo=lane,
                         hi=lane, active=np.ones(s.shape, dtype=bool))


def test_mobil_takes_a_faster_free_lane():
    # Vehicle 0 is stuck 20 m behind a slow car in lane 0; lane 1 is free.
    nb = scene([0.0, 25.0], [25.0, 15.0], [30.0, 15.0], [0, 0])
    target = mobil_targets(nb, np.array([True, False]), 2, P, M)
    assert target.tolist() == [1, -1]


def test_mobil_refuses_an_unsafe_gap():
    # Same, but a fast car is 8 m behind in lane 1: it would have to brake beyond b_safe.
    nb = scene([0.0, 25.0, -12.0], [25.0, 15.0, 30.0], [30.0, 15.0, 30.0], [0, 0, 1])
    target = mobil_targets(nb, np.array([True, False, False]), 2, P, M)
    assert target[0] == -1


def test_mobil_stays_without_incentive_and_respects_road_edges():
    nb = scene([0.0], [25.0], [25.0], [0])
    assert mobil_targets(nb, np.array([True]), 1, P, M).tolist() == [-1]
    nb = scene([0.0, 25.0], [25.0, 15.0], [30.0, 15.0], [0, 0])
    assert mobil_targets(nb, np.array([True, False]), 1, P, M)[0] == -1  # no lane 1 on this road
