"""Fusion says, for each ego-sensor message its filter judged, whether the gates refused it, so
that the stack can count refusals in a row (a stream fusion keeps refusing is lost).

A wheel stuck at 0 while the car moves, fresh and finite, was alive and healthy to the monitor:
the EKF refused every reading and the run stayed NOMINAL on two working ego sensors.
"""
import numpy as np
import pytest

from core.messages import GnssFix, ImuSample, WheelSpeed
from fusion.ego_ekf import EgoFilterState
from fusion.pipeline import FusionConfig, FusionState, fusion_step
from fusion.sync import StreamConfig, SyncConfig

MS = 1_000_000


def _config():
    streams = {name: StreamConfig(10 * MS) for name in ("wheel", "gnss", "imu")}
    return FusionConfig(sync=SyncConfig(streams=streams))


def _moving_at_20():
    return FusionState(ego_filter=EgoFilterState.at(0, np.zeros(3), 20.0, (0.1, 0.1, 0.01), 0.1))


def _verdicts(state, cfg, arrivals_by_step):
    out_verdicts = []
    for t_ms, arrivals in arrivals_by_step:
        state, out = fusion_step(state, arrivals, t_ms * MS, cfg)
        out_verdicts.extend(out.ego_verdicts)
    return state, [(v.stream, v.refused) for v in out_verdicts]


def test_each_judged_wheel_reading_is_reported_refused_or_applied_in_order():
    steps = [(t, [("wheel", WheelSpeed(t * MS, 20.0 if t < 100 else 0.0))]) for t in range(20, 201, 20)]
    state, verdicts = _verdicts(_moving_at_20(), _config(), steps)
    # Released 10 ms after their stamps (the largest window): 20..80 ms applied, 100..180 ms
    # refused, 200 ms still buffered.
    assert verdicts == [("wheel", False)] * 4 + [("wheel", True)] * 5
    assert state.ego_filter.counters.wheel_outliers == 5


def test_gnss_and_imu_verdicts_name_their_streams():
    far_fix = GnssFix(40 * MS, np.array([500.0, 0.0]), 1.0)  # far outside the NIS gate
    steps = [(20, [("imu", ImuSample(10 * MS, np.zeros(3), 0.0))]), (45, [("gnss", far_fix)]), (60, [])]
    _, verdicts = _verdicts(_moving_at_20(), _config(), steps)
    assert verdicts == [("imu", False), ("gnss", True)]


def test_nothing_is_reported_for_messages_no_gate_judged():
    # Older than the filter (stale), or before any filter exists: counted by the filter, no verdict.
    empty = FusionState()
    _, verdicts = _verdicts(empty, _config(), [(20, [("wheel", WheelSpeed(5 * MS, 3.0))])])
    assert verdicts == []


def test_a_quarantined_stream_is_judged_but_never_applied():
    cfg = _config()
    steps = [(t, [("wheel", WheelSpeed(t * MS, 20.0 if t < 60 else 0.0))]) for t in range(20, 121, 20)]
    state = _moving_at_20()
    verdicts = []
    for t_ms, arrivals in steps:
        state, out = fusion_step(state, arrivals, t_ms * MS, cfg, quarantined=frozenset({"wheel"}))
        verdicts.extend((v.stream, v.refused) for v in out.ego_verdicts)
    # Readings of 20 and 40 ms pass the gate (counted quarantined, not applied); 60..100 ms refused.
    assert verdicts == [("wheel", False)] * 2 + [("wheel", True)] * 3
    c = state.ego_filter.counters
    assert (c.applied, c.quarantined, c.wheel_outliers) == (0, 2, 3)
    # Nothing applied: the speed is the prior's, untouched by any reading.
    assert state.ego_filter.x[3] == 20.0


def test_a_quarantined_imu_no_longer_drives_the_prediction():
    cfg = _config()
    state = _moving_at_20()
    # An applied sample sets the held acceleration (the motion model's control input) to 2 m/s^2.
    state, _ = fusion_step(state, [("imu", ImuSample(10 * MS, np.array([2.0, 0.0, 0.0]), 0.0))], 15 * MS, cfg)
    state, _ = fusion_step(state, [], 30 * MS, cfg)  # released 10 ms (the window) after its stamp
    assert state.ego_filter.accel_mps2 == 2.0
    # Quarantined, a sample passing the gate neither updates nor keeps the old one driving.
    quarantined = frozenset({"imu"})
    sample = ImuSample(40 * MS, np.array([2.0, 0.0, 0.0]), 0.0)
    state, _ = fusion_step(state, [("imu", sample)], 45 * MS, cfg, quarantined=quarantined)
    state, out = fusion_step(state, [], 60 * MS, cfg, quarantined=quarantined)
    assert [(v.stream, v.refused) for v in out.ego_verdicts] == [("imu", False)]
    assert state.ego_filter.accel_mps2 == 0.0 and state.ego_filter.counters.quarantined == 1


def test_a_refused_quarantined_imu_sample_also_drops_the_held_acceleration():
    cfg = _config()
    state, _ = fusion_step(_moving_at_20(), [("imu", ImuSample(10 * MS, np.array([2.0, 0.0, 0.0]), 0.0))], 15 * MS,
                           cfg)
    wild = ImuSample(20 * MS, np.array([2.0, 0.0, 0.0]), 5.0)  # 5 rad/s: far outside the motion gate
    state, _ = fusion_step(state, [("imu", wild)], 25 * MS, cfg, quarantined=frozenset({"imu"}))
    state, out = fusion_step(state, [], 40 * MS, cfg, quarantined=frozenset({"imu"}))
    assert [(v.stream, v.refused) for v in out.ego_verdicts] == [("imu", True)]
    assert state.ego_filter.accel_mps2 == 0.0 and state.ego_filter.counters.imu_outliers == 1


def test_a_quarantined_gnss_fix_never_starts_a_filter():
    # After a clock reset the filter is empty again; a quarantined receiver must not place it.
    from fusion.ego_ekf import EgoConfig, ego_update

    fix = GnssFix(30 * MS, np.array([123.0, -45.0]), 1.0)
    state = ego_update(EgoFilterState.empty(), fix, EgoConfig(), apply=False)
    assert state.t_ns is None and state.counters.applied == 0 and state.counters.waiting_for_gnss == 1
    assert ego_update(EgoFilterState.empty(), fix, EgoConfig()).t_ns == 30 * MS


def test_each_verdict_carries_its_innovations_nis_in_closed_form():
    cfg = _config()
    prior = _moving_at_20()
    ego = cfg.ego
    # Judged at t = 5 ms, 5 ms after the prior: predict P to then the way the filter does, then
    # y^2 / (H P H^T + R) with H the wheel's row (gain 1 at a zero scale; v on the scale).
    from fusion.ego_ekf import _predict
    p = _predict(prior.ego_filter, 5 * MS, ego).p
    spread_wheel = p[3, 3] + 2.0 * 20.0 * p[3, 5] + 20.0**2 * p[5, 5] + ego.wheel_speed_sigma_mps**2
    state, out = fusion_step(prior, [("wheel", WheelSpeed(5 * MS, 20.3))], 15 * MS, cfg)
    (v,) = out.ego_verdicts
    assert (v.stream, v.refused, v.dof) == ("wheel", False, 1)
    assert v.nis == pytest.approx(0.3**2 / spread_wheel, rel=1e-9)
    fix = GnssFix(20 * MS, np.array([20.0 * 0.020 + 1.0, -1.0]), 1.0)  # 1 m ahead and 1 m aside of the prediction
    _, out = fusion_step(state, [("gnss", fix)], 30 * MS, cfg)
    (g,) = out.ego_verdicts
    assert (g.stream, g.refused, g.dof) == ("gnss", False, 2)
    assert 1.0 < g.nis < 2.0  # |y|^2 = 2 m^2 over a 1 m^2 noise plus the filter's own spread
