"""The ego EKF's rejection counters reach the run's JSON and its readable summary."""
import json
from dataclasses import asdict, fields, replace

from fusion.ego_ekf import EgoCounters
from runtime.closed_loop import ClosedLoop, RunOptions, ego_filter_counters, sensor_counters
from runtime.summary import format_summary
from sim.scenario import load_scenario


def test_gate_rejections_of_noisy_ego_sensors_show_per_stream_and_in_the_table():
    # Noise far beyond the filter's sensor models: its gates refuse a share of each stream.
    faults = ("imu:noise=1000@1", "wheel:noise=1000@1", "gnss:noise=50@1")
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=2.0, sensors=True, faults=faults))
    s = json.loads(json.dumps(loop.run()))  # what --json prints
    counters = loop.stack.fusion_state.ego_filter.counters
    assert counters.imu_outliers > 0 and counters.wheel_outliers > 0 and counters.gnss_outliers > 0
    assert s["ego_filter"] == asdict(counters)
    assert s["sensors"]["imu"]["rejected_by_ego_filter"] == counters.imu_outliers
    assert s["sensors"]["wheel"]["rejected_by_ego_filter"] == counters.wheel_outliers
    assert s["sensors"]["gnss"]["rejected_by_ego_filter"] == counters.gnss_outliers
    for name in ("camera", "lidar", "radar", "oracle"):  # streams the ego filter never sees
        assert s["sensors"][name]["rejected_by_ego_filter"] == 0
    table = format_summary(s)
    assert f"imu_outliers {counters.imu_outliers}" in table
    header = next(line.split() for line in table.splitlines() if line.split()[:1] == ["sensor"])
    assert header[-3:] == ["ekf", "gate", "frozen"]
    imu_row = next(line.split() for line in table.splitlines() if line.split()[:1] == ["imu"])
    assert int(imu_row[-2]) == counters.imu_outliers and int(imu_row[-1]) == 0


def test_a_frozen_stream_shows_in_the_table():
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=3.0, sensors=True,
                                                             faults=("lidar:freeze@1",)))
    s = json.loads(json.dumps(loop.run()))
    assert s["sensors"]["lidar"]["frozen"] == 1
    rows = {line.split()[0]: line.split() for line in format_summary(s).splitlines() if line.split()[:1]}
    assert rows["lidar"][-1] == "1" and rows["camera"][-1] == "0"


def test_every_ego_filter_counter_is_reported_under_its_own_name():
    # Non-finite updates cannot be provoked through the fault vocabulary (noise is capped), so the
    # filter's counters are set directly: each a different value, so no field can stand in for another.
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=1.0, sensors=True))
    values = {f.name: k + 1 for k, f in enumerate(fields(EgoCounters))}
    fusion = loop.stack.fusion_state
    loop.stack.fusion_state = replace(fusion, ego_filter=replace(fusion.ego_filter, counters=EgoCounters(**values)))
    assert ego_filter_counters(loop.stack) == values
    sensors = sensor_counters(loop.stack, loop.rig)
    assert {name: sensors[name]["rejected_by_ego_filter"] for name in ("imu", "wheel", "gnss")} == {
        "imu": values["imu_outliers"], "wheel": values["wheel_outliers"], "gnss": values["gnss_outliers"]}
