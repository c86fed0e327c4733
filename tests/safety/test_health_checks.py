"""Rate, bad data, heartbeat, stage watch and the picture judgements, each with its bad inputs."""
import math

import numpy as np
import pytest

from core.config import ConfigError, from_mapping
from core.messages import EgoState, Mode, StageTiming, Tracks
from safety.health import HealthState, StreamSpec, observe, stream_bad_data, stream_rate_ok
from safety.monitor import DEFAULT_RULES, MonitorState, SafetyConfig, safety_step
from safety.picture import (PictureConfig, heading_lost, heading_sigma_rad, localisation_lost, obstacle_close_ahead,
                            position_sigma_m)
from safety.stage_health import StageCounts, StageWatch, StageWatchConfig, watch_step

MS = 1_000_000
IMU = StreamSpec("imu", period_ns=10 * MS)


def _feed(times_ms, name="imu", h=HealthState()):
    for t in times_ms:
        h = observe(h, name, t * MS, t * MS)
    return h


def test_rate_within_tolerance_and_a_halved_rate_flagged():
    assert stream_rate_ok(_feed(range(0, 200, 10)), IMU, 200 * MS)
    assert not stream_rate_ok(_feed(range(0, 200, 20)), IMU, 200 * MS)  # 2x the period: out of 1.5x


def test_an_outage_is_not_held_against_the_rate_after_recovery():
    h = _feed(list(range(0, 100, 10)) + list(range(600, 700, 10)))  # a 500 ms gap, then nominal
    assert stream_rate_ok(h, IMU, 700 * MS)


def test_bad_data_is_remembered_for_the_streams_max_age():
    h = observe(_feed(range(0, 100, 10)), "imu", 100 * MS, 100 * MS, finite=False)
    assert stream_bad_data(h, IMU, 120 * MS) and not stream_bad_data(h, IMU, 131 * MS)
    h = observe(h, "imu", 140 * MS, 140 * MS, well_formed=False)
    assert stream_bad_data(h, IMU, 150 * MS) and h.streams["imu"].malformed == 1


def _monitor(times_ms, flags=frozenset()):
    state, modes = MonitorState(), []
    h = _feed(range(0, 2000, 10))
    for t in times_ms:
        state, status = safety_step(state, h, (IMU,), flags, DEFAULT_RULES, t * MS, SafetyConfig())
        modes.append(status.mode)
    return state, modes


def test_heartbeat_late_stalled_or_backwards_loop_demands_minimal_risk():
    _, modes = _monitor([100, 110, 120])
    assert modes == [Mode.NOMINAL] * 3
    state, modes = _monitor([100, 110, 400])  # the loop stalled for 290 ms
    assert modes[-1] == Mode.MINIMAL_RISK and state.reason == "loop heartbeat late"
    _, modes = _monitor([100, 110, 105])  # the monitor's time went backwards
    assert modes[-1] == Mode.MINIMAL_RISK
    _, modes = _monitor([100, 110, 110])  # a repeated instant is no heartbeat
    assert modes[-1] == Mode.MINIMAL_RISK


def test_stage_watch_counts_misses_in_a_window_and_counter_growth():
    cfg = StageWatchConfig(window_runs=4, max_misses_in_window=3, event_hold_s=0.5)
    timings = [StageTiming("fusion", i * 20 * MS, i * 20 * MS, 0, 5 * MS, missed=m)
               for i, m in enumerate([True, False, True, True])]
    watch, flags = watch_step(StageWatch(), timings, {}, 100 * MS, cfg)
    assert "stage.deadline_window" in flags and watch.timings_seen == 4
    timings += [StageTiming("fusion", 0, 0, 0, 5 * MS, missed=False)] * 2  # two clean runs push misses out
    watch, flags = watch_step(watch, timings, {}, 120 * MS, cfg)
    assert "stage.deadline_window" not in flags
    watch, flags = watch_step(watch, timings, {"perception.lidar": StageCounts(0, 1), "planning": StageCounts(1, 0)},
                              200 * MS, cfg)
    assert {"detector.unhealthy", "stage.nonfinite"} <= flags
    watch, flags = watch_step(watch, timings, {"perception.lidar": StageCounts(0, 1), "planning": StageCounts(1, 0)},
                              701 * MS, cfg)
    assert not flags  # no new events for longer than the hold


def _ego(cov_xy=0.01, pose=(0.0, 0.0, 0.0)):
    cov = np.eye(5) * cov_xy
    return EgoState(0, np.array(pose, dtype=np.float64), 20.0, 0.0, 0.0, cov)


def test_localisation_lost_on_large_or_nonfinite_uncertainty():
    cfg = PictureConfig(max_position_sigma_m=1.0)
    assert not localisation_lost(_ego(0.25), cfg)  # sigma 0.5 m
    assert localisation_lost(_ego(1.44), cfg)  # sigma 1.2 m
    assert localisation_lost(_ego(float("nan")), cfg)
    assert localisation_lost(_ego(0.01, pose=(np.inf, 0.0, 0.0)), cfg)
    assert not localisation_lost(None, cfg)
    assert position_sigma_m(np.zeros((1,))) == math.inf  # wrong shape: lost, never an exception
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])  # correlated: the worst axis is the diagonal
    assert position_sigma_m(cov) == pytest.approx(math.sqrt(1.9))


def test_heading_lost_on_large_or_nonfinite_heading_uncertainty():
    cfg = PictureConfig(max_heading_sigma_rad=0.05)
    ego = _ego(0.01)  # yaw variance 0.01: sigma 0.1 rad
    assert heading_sigma_rad(ego.covariance) == pytest.approx(0.1)
    assert heading_lost(ego, cfg)
    cov = np.eye(5) * 0.01
    cov[2, 2] = 0.04**2
    calm = EgoState(0, np.zeros(3), 20.0, 0.0, 0.0, cov)
    assert not heading_lost(calm, cfg)
    assert not localisation_lost(ego, PictureConfig())  # the position alone (sigma 0.1 m) is fine
    cov[2, 2] = np.nan
    assert heading_lost(EgoState(0, np.zeros(3), 20.0, 0.0, 0.0, cov), cfg)
    assert heading_sigma_rad(np.eye(2)) == math.inf  # no yaw in it: lost, never an exception
    assert not heading_lost(None, cfg)


def test_heading_lost_demands_a_minimal_risk_stop():
    streams = (StreamSpec("imu", 10_000_000),)
    health = observe(HealthState(), "imu", 0, 0, True)
    _, status = safety_step(MonitorState(), health, streams, frozenset({"localisation.heading_lost"}),
                            DEFAULT_RULES, 10_000_000, SafetyConfig())
    assert status.mode == Mode.MINIMAL_RISK
    assert status.reason == "ego localisation lost: heading uncertainty over its limit"


def _tracks(xy, existence=None):
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    states = np.zeros((n, 4))
    states[:, :2] = xy
    ex = np.full(n, 0.9) if existence is None else np.asarray(existence, dtype=np.float64)
    return Tracks(0, np.arange(n), states, np.zeros((n, 4, 4)), np.zeros(n), np.ones((n, 3)),
                  np.zeros(n, np.int16), ex)


def test_obstacle_close_ahead_in_the_vehicle_frame():
    cfg = PictureConfig(close_ahead_m=40.0, close_half_width_m=2.5)
    ego = _ego(pose=(100.0, 50.0, math.pi / 2))  # heading north
    assert obstacle_close_ahead(ego, _tracks([[100.5, 80.0]]), cfg)  # 30 m ahead
    assert not obstacle_close_ahead(ego, _tracks([[100.0, 20.0]]), cfg)  # behind
    assert not obstacle_close_ahead(ego, _tracks([[104.0, 60.0]]), cfg)  # next lane
    assert not obstacle_close_ahead(ego, _tracks([[100.0, 60.0]], existence=[0.1]), cfg)  # unconfirmed
    assert not obstacle_close_ahead(ego, _tracks([[np.nan, 60.0]]), cfg)
    assert not obstacle_close_ahead(ego, Tracks.empty(0), cfg)
    assert not obstacle_close_ahead(None, _tracks([[100.0, 60.0]]), cfg)



def test_stage_watch_config_rejects_a_miss_limit_its_window_cannot_hold():
    # window_runs = 10 with the default 15 misses: the deadline-window watchdog could never fire.
    with pytest.raises(ConfigError, match=r"cfg\.toml: stages: max_misses_in_window \(15\) must be "
                                          r"<= window_runs \(10\)"):
        from_mapping(SafetyConfig, {"stages": {"window_runs": 10}}, "cfg.toml")
    StageWatchConfig(window_runs=15, max_misses_in_window=15)  # a full window may be the limit


def _healthy_ego_streams():
    """The three ego streams, each with a fresh message at t = 0."""
    specs = tuple(StreamSpec(name, 20_000_000) for name in ("gnss", "imu", "wheel"))
    health = HealthState()
    for name in ("gnss", "imu", "wheel"):
        health = observe(health, name, 0, 0, True)
    return specs, health


def test_streams_the_ego_filter_keeps_refusing_count_as_lost():
    specs, health = _healthy_ego_streams()
    _, one = safety_step(MonitorState(), health, specs, frozenset(), DEFAULT_RULES, 10_000_000, SafetyConfig(),
                         refused=frozenset({"wheel"}))
    assert one.mode == Mode.DEGRADED
    assert one.reason == "wheel odometry lost; wheel refused: the ego filter rejects its data"
    assert not one.stream_alive["wheel"] and one.stream_alive["imu"]
    _, two = safety_step(MonitorState(), health, specs, frozenset(), DEFAULT_RULES, 10_000_000, SafetyConfig(),
                         refused=frozenset({"wheel", "gnss"}))
    assert two.mode == Mode.MINIMAL_RISK and "two of three ego sensors lost" in two.reason
    _, none = safety_step(MonitorState(), health, specs, frozenset(), DEFAULT_RULES, 10_000_000, SafetyConfig())
    assert none.mode == Mode.NOMINAL


def test_streams_whose_innovations_exceed_their_noise_count_as_lost():
    specs, health = _healthy_ego_streams()
    _, one = safety_step(MonitorState(), health, specs, frozenset(), DEFAULT_RULES, 10_000_000, SafetyConfig(),
                         inconsistent=frozenset({"gnss"}))
    assert one.mode == Mode.DEGRADED
    assert one.reason == "gnss lost: dead reckoning; gnss inconsistent: its innovations exceed its noise"
    assert not one.stream_alive["gnss"] and one.stream_alive["imu"]
    _, two = safety_step(MonitorState(), health, specs, frozenset(), DEFAULT_RULES, 10_000_000, SafetyConfig(),
                         refused=frozenset({"wheel"}), inconsistent=frozenset({"imu"}))
    assert two.mode == Mode.MINIMAL_RISK and "two of three ego sensors lost" in two.reason
