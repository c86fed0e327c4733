"""The closed loop with the simulated sensors on: EKF localisation, sync, faults in the JSON."""
import pytest

from core.messages import LidarScan
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.errors import UsageError
from sim.scenario import load_scenario


def test_sensors_on_drives_on_the_ekf_and_counts_every_stream():
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=3, duration_s=3.0, sensors=True))
    s = loop.run()
    assert s["collisions"] == 0
    assert s["lane_center_rmse_m"] < 0.3  # localised by the EKF, not the oracle ego
    assert set(s["sensors"]) == {"camera", "lidar", "radar", "imu", "wheel", "gnss", "oracle"}
    assert s["sensors"]["imu"]["messages"] == 301  # 100 Hz over [0, 3] s
    assert s["sensors"]["lidar"]["messages"] == 31
    assert s["modes"] == []  # no stream counted as lost while its first message was in flight


def test_lidar_dropout_fault_shows_in_counters_and_degrades():
    loop = ClosedLoop(load_scenario("free_road"),
                      RunOptions(seed=0, duration_s=4.0, sensors=True, faults=("lidar:dropout@2",)))
    s = loop.run()
    lidar = s["sensors"]["lidar"]
    assert lidar["dropped"] == 21 and lidar["faulted"] == 21  # captures at 2.0, 2.1, ..., 4.0 s
    assert s["modes"][0]["mode"] == "DEGRADED" and s["modes"][0]["reason"] == "lidar lost"
    assert 2.0 < s["modes"][0]["t_s"] <= 2.0 + 0.35  # within 3 lidar periods + latency


def test_corrupt_payload_is_counted_malformed_and_never_reaches_a_stage():
    seen = []
    loop = ClosedLoop(load_scenario("free_road"),
                      RunOptions(seed=0, duration_s=2.0, sensors=True, faults=("imu:corrupt@1-1.5",)))
    loop.scheduler.add_listener(lambda t, topic, msg: seen.append(topic))
    s = loop.run()
    assert s["sensors"]["imu"]["malformed"] == 50
    assert s["stage_errors"] == {}  # no stage raised on the bad payloads


def test_sensor_fault_without_sensors_is_a_usage_error():
    with pytest.raises(UsageError, match="need the simulated sensors"):
        ClosedLoop(load_scenario("free_road"), RunOptions(faults=("lidar:dropout@1",)))


def test_hung_planner_leads_to_minimal_risk_and_a_stop():
    s = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=14.0, faults=("planner:hang@2",))).run()
    assert s["collisions"] == 0
    assert s["modes"][0] == {"t_s": 2.21, "mode": "MINIMAL_RISK", "reason": "planner missed 3 deadlines in a row"}
    assert s["stages"]["planning"]["misses"] >= 3
    assert s["final_speed_mps"] < 0.1  # the controller's stale-plan brake brought it to a stop


def test_stage_fault_on_a_stage_the_run_lacks_is_a_usage_error():
    with pytest.raises(UsageError, match="addresses detector"):
        ClosedLoop(load_scenario("free_road"), RunOptions(faults=("detector:exception@1",)))
