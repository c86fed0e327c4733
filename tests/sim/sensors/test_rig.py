import dataclasses

import numpy as np
import pytest

from core.messages import GnssFix, ImuSample, WheelSpeed
from sim.sensors.config import SENSOR_NAMES, GnssConfig, ImuConfig, SensorRigConfig, WheelConfig
from sim.sensors.ego_sensors import GRAVITY_MPS2, ImuBias, gnss_fix, imu_sample, wheel_speed
from sim.sensors.rig import SensorRig
from tests.sim.sensors.conftest import make_ego, random_traffic

SMALL = SensorRigConfig(enabled=("radar", "imu", "wheel", "gnss"))


def run(rig, sensor, n, ego=None, actors=None):
    ego, actors = ego or make_ego(speed_mps=10.0), actors if actors is not None else random_traffic(5)
    out = []
    for _ in range(n):
        out.append((rig.next_capture_ns(sensor), rig.capture(sensor, rig.next_capture_ns(sensor), ego, actors)))
    return out


def test_arrival_is_capture_plus_latency_plus_bounded_jitter(road):
    for dist in ("uniform", "normal"):
        cfg = dataclasses.replace(SMALL, radar=dataclasses.replace(SMALL.radar, latency_s=0.02, jitter_s=0.01,
                                                                    jitter_dist=dist))
        rig = SensorRig(cfg, road, seed=1)
        delays = []
        for t_cap, arrivals in run(rig, "radar", 200):
            (a,) = arrivals
            assert a.capture_ns == t_cap and a.topic == "radar"
            delays.append(a.arrival_ns - t_cap)
        delays = np.array(delays)
        # In order delivery may hold a message back behind its predecessor, never below the bound.
        assert delays.min() >= 20_000_000 and np.percentile(delays, 90) <= 30_000_000
        assert np.ptp(delays) > 5_000_000
        arrivals = [a.arrival_ns for _, (a,) in run(rig, "radar", 50)]
        assert np.all(np.diff(arrivals) > 0)


def test_schedule_and_clock_offset(road):
    cfg = dataclasses.replace(SMALL, imu=dataclasses.replace(SMALL.imu, clock_offset_s=-0.25, phase_s=0.003))
    rig = SensorRig(cfg, road, seed=1)
    caps = run(rig, "imu", 4)
    assert [t for t, _ in caps] == [3_000_000, 13_000_000, 23_000_000, 33_000_000]
    assert all(a.message.t_ns == t - 250_000_000 for t, (a,) in caps)
    assert all(a.arrival_ns == t + 2_000_000 for t, (a,) in caps)  # no jitter configured


def test_determinism_and_independence_of_sensors(road):
    def radar_ranges(cfg, seed):
        rig = SensorRig(cfg, road, seed=seed)
        return [a.message.range_m for _, (a,) in run(rig, "radar", 5)]
    a = radar_ranges(SMALL, 3)
    b = radar_ranges(SMALL, 3)
    c = radar_ranges(dataclasses.replace(SMALL, enabled=("gnss", "radar")), 3)
    d = radar_ranges(SMALL, 4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.array_equal(x, y) for x, y in zip(a, c))  # other sensors do not shift its noise
    assert not all(np.array_equal(x, y) for x, y in zip(a, d))


def test_all_sensors_produce_their_messages(road):
    rig = SensorRig(SensorRigConfig(), road, seed=0)
    ego, actors = make_ego(speed_mps=10.0), random_traffic(8)
    for sensor in SENSOR_NAMES:
        (a,) = rig.capture(sensor, rig.next_capture_ns(sensor), ego, actors)
        assert a.topic == sensor and a.message.t_ns == 0
        assert (a.truth is None) == (sensor in ("imu", "wheel", "gnss"))
    assert set(rig.counters()) == set(SENSOR_NAMES)
    assert all(c["messages"] == 1 and c["dropped"] == 0 for c in rig.counters().values())
    with pytest.raises(KeyError, match="unknown or disabled sensor"):
        rig.capture("sonar", 0, ego, actors)


def test_imu_wheel_gnss_models():
    rng = np.random.default_rng(0)
    exact = ImuConfig(accel_sigma_mps2=0.0, gyro_sigma_rps=0.0)
    bias = ImuBias(np.array([0.1, -0.2, 0.05]), 0.01)
    ego = make_ego(speed_mps=10.0, yaw_rate_rps=0.2, accel_mps2=1.5)
    s = imu_sample(exact, 7, ego, bias, rng)
    assert isinstance(s, ImuSample) and s.t_ns == 7
    w, x = 0.2, exact.x_m
    np.testing.assert_allclose(s.accel_mps2, [1.5 - w * w * x + 0.1, 10.0 * w - 0.2, GRAVITY_MPS2 + 0.05])
    assert s.yaw_rate_rps == pytest.approx(0.21)
    noisy = np.array([imu_sample(ImuConfig(), 0, ego, bias, rng, noise_scale=3.0).yaw_rate_rps for _ in range(2000)])
    assert np.std(noisy) == pytest.approx(3.0 * ImuConfig().gyro_sigma_rps, rel=0.1)

    ws = wheel_speed(WheelConfig(speed_sigma_mps=0.0, scale_error=0.01), 3, ego, rng)
    assert isinstance(ws, WheelSpeed) and ws.speed_mps == pytest.approx(10.1)
    assert wheel_speed(WheelConfig(speed_sigma_mps=1.0), 3, make_ego(), rng).speed_mps >= 0.0

    lever = GnssConfig(x_m=1.0, y_m=0.5, sigma_m=0.0, outlier_prob=0.0)
    fix = gnss_fix(lever, 1, make_ego(pose=(10.0, 20.0, np.pi / 2)), rng)
    assert isinstance(fix, GnssFix)
    np.testing.assert_allclose(fix.position_m, [10.0 - 0.5, 20.0 + 1.0], atol=1e-12)
    cfg = GnssConfig(sigma_m=0.5, outlier_prob=0.1, outlier_sigma_m=20.0)
    err = np.array([np.linalg.norm(gnss_fix(cfg, 0, make_ego(), rng).position_m) for _ in range(3000)])
    assert 0.05 < np.mean(err > 5.0) < 0.12  # outliers: about outlier_prob of the fixes


def test_bad_truth_is_rejected_or_left_out(road):
    from sim.sensors.frames import to_vehicle_frame
    actors = random_traffic(4)
    xy = actors.xy_m.copy()
    xy[1, 0] = np.nan
    bad = dataclasses.replace(actors, xy_m=xy)
    local = to_vehicle_frame(make_ego(), bad)
    assert local.ids.tolist() == [actors.ids[0], actors.ids[2], actors.ids[3]]
    rig = SensorRig(SensorRigConfig(), road, seed=0)
    for sensor in ("camera", "lidar", "radar"):
        (a,) = rig.capture(sensor, rig.next_capture_ns(sensor), make_ego(), bad)
        assert actors.ids[1] not in np.asarray(getattr(a.truth, "ids", getattr(a.truth, "point_ids", [])))
    with pytest.raises(ValueError, match="finite"):
        rig.capture("radar", rig.next_capture_ns("radar"), make_ego(pose=(np.nan, 0.0, 0.0)), actors)
