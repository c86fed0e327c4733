"""Closed loop: sensors that keep delivering data the stack cannot use count as lost.

A stream whose messages fusion's synchroniser drops (a clock skewed into the future) delivers
nothing usable; before, health counted its arrivals and the run stayed NOMINAL with two of three
sensors of a kind gone. Camera and lidar are rendered small (same rates, latencies and jitter), as
in the fault matrix, to keep the runs short.
"""
import dataclasses

import pytest

from core.messages import WheelSpeed
from fusion.sync import Decision
from runtime.closed_loop import ClosedLoop, RunOptions
from sim.scenario import load_scenario


def light_scenario(name: str, enabled: tuple[str, ...] | None = None):
    sc = load_scenario(name)
    s = sc.sensors
    s = dataclasses.replace(s, camera=dataclasses.replace(s.camera, width_px=64, height_px=36),
                            lidar=dataclasses.replace(s.lidar, beams=8, azimuth_steps=180))
    if enabled is not None:
        s = dataclasses.replace(s, enabled=enabled)
    return dataclasses.replace(sc, sensors=s)


def run(perception: str, faults: tuple[str, ...], duration_s: float = 2.0,
        enabled: tuple[str, ...] | None = None) -> dict:
    loop = ClosedLoop(light_scenario("free_road", enabled),
                      RunOptions(seed=0, duration_s=duration_s, sensors=True, perception=perception, faults=faults))
    return loop.run()


@pytest.mark.parametrize("skewed", [False, True])
def test_ego_sensors_whose_messages_sync_drops_are_lost(skewed):
    # Oracle objects; the ego from the EKF on the simulated IMU, wheel and GNSS.
    faults = ("imu:skew=0.5@1", "wheel:skew=0.5@1") if skewed else ()
    s = run("oracle", faults, enabled=("imu", "wheel", "gnss"))
    if not skewed:
        assert s["modes"] == [] and s["sensors"]["imu"]["rejected_by_sync"] == 0
        return
    assert s["sensors"]["imu"]["rejected_by_sync"] == 100 and s["sensors"]["wheel"]["rejected_by_sync"] == 50
    mrm = next(m for m in s["modes"] if m["mode"] == "MINIMAL_RISK")
    assert "ego localisation lost: two of three ego sensors lost" in mrm["reason"]
    # The last usable IMU message arrived at 0.992 s: lost after its 30 ms age, seen once fusion
    # (50 Hz) has dropped the messages after it.
    assert 1.0 < mrm["t_s"] <= 1.08
    assert s["final_mode"] == "MINIMAL_RISK"


@pytest.mark.parametrize("skewed", [False, True])
def test_object_sensors_whose_detections_sync_drops_are_lost(skewed):
    # Classical perception: lidar clustering and radar clusters go through the synchroniser.
    faults = ("lidar:skew=0.5@1", "radar:skew=0.5@1") if skewed else ()
    s = run("classical", faults)
    if not skewed:
        assert s["modes"] == []
        return
    assert s["sensors"]["lidar"]["rejected_by_sync"] == 10 and s["sensors"]["radar"]["rejected_by_sync"] == 20
    mrm = next(m for m in s["modes"] if m["mode"] == "MINIMAL_RISK")
    assert "two of three object sensors lost" in mrm["reason"]
    # Lidar: 10 Hz, lost 0.3 s after the last usable scan (captured 0.9 s, arrived ~0.95 s).
    assert 1.0 < mrm["t_s"] <= 1.3
    assert s["final_mode"] == "MINIMAL_RISK"


# A frozen sensor keeps delivering fresh messages repeating its last data (sim/faults.py freeze).
# Before, such a stream was alive, and a run with two or three frozen object sensors stayed NOMINAL.
@pytest.mark.parametrize("frozen", [(), ("imu", "wheel")], ids=["clean", "imu+wheel"])
def test_frozen_ego_sensors_are_lost(frozen):
    s = run("oracle", tuple(f"{name}:freeze@1" for name in frozen), enabled=("imu", "wheel", "gnss"))
    if not frozen:
        assert s["modes"] == [] and all(c["frozen"] == 0 for c in s["sensors"].values())
        return
    assert s["sensors"]["imu"]["frozen"] == 1 and s["sensors"]["wheel"]["frozen"] == 1
    mrm = next(m for m in s["modes"] if m["mode"] == "MINIMAL_RISK")
    assert "ego localisation lost: two of three ego sensors lost" in mrm["reason"]
    assert "imu frozen" in mrm["reason"] and "wheel frozen" in mrm["reason"]
    # 30 IMU and 15 wheel repeats in a row (0.3 s) from the first frozen sample at 1.0 s.
    assert 1.28 <= mrm["t_s"] <= 1.32
    assert s["final_mode"] == "MINIMAL_RISK"


@pytest.mark.parametrize("frozen", [(), ("camera", "lidar")], ids=["clean", "camera+lidar"])
def test_frozen_object_sensors_are_lost(frozen):
    # Every simulated sensor on (objects from the oracle): health watches the raw streams.
    s = run("oracle", tuple(f"{name}:freeze@1" for name in frozen))
    if not frozen:
        assert s["modes"] == [] and all(c["frozen"] == 0 for c in s["sensors"].values())
        return
    assert s["sensors"]["camera"]["frozen"] == 1 and s["sensors"]["lidar"]["frozen"] == 1
    assert s["modes"][0]["reason"] == "lidar lost; lidar frozen: it repeats its last data"
    mrm = next(m for m in s["modes"] if m["mode"] == "MINIMAL_RISK")
    assert mrm["reason"] == ("lidar lost; camera lost; two of three object sensors lost; "
                             "camera frozen: it repeats its last data; lidar frozen: it repeats its last data")
    # Lidar: the scans of 1.0, 1.1 and 1.2 s repeat the one of 0.9 s (arriving ~1.25 s); camera:
    # six repeats from 1.0 s, the sixth captured at 1.25 s and arriving ~1.28 s.
    assert 1.25 <= mrm["t_s"] <= 1.3
    assert s["final_mode"] == "MINIMAL_RISK"


# Without the IMU's yaw rate the EKF has no heading rate but the GNSS track (1 m at 10 Hz): on the
# curve its heading error reached 0.3-1.7 rad while the run stayed DEGRADED, weaving at up to
# 8.2 m/s^2 of lateral acceleration. A frozen IMU was worse: fused, its yaw rate kept the heading
# confidently wrong, GNSS fixes were gated out as outliers and the car left its lane by metres.
@pytest.mark.parametrize("kind", ["freeze", "dropout"])
def test_losing_the_imu_loses_the_heading_and_stops(kind):
    s = run("oracle", (f"imu:{kind}@1",), duration_s=2.5, enabled=("imu", "wheel", "gnss"))
    degraded, mrm = s["modes"][0], s["modes"][1]
    assert degraded["mode"] == "DEGRADED" and degraded["reason"].startswith("imu lost")
    assert mrm["mode"] == "MINIMAL_RISK"
    assert mrm["reason"].endswith("ego localisation lost: heading uncertainty over its limit")
    # Lost (dropout: 3 periods) or frozen (30 repeats, 0.3 s), then the heading sigma passes
    # 0.05 rad within half a second of the last yaw rate the filter took.
    assert degraded["t_s"] <= 1.31 and mrm["t_s"] - degraded["t_s"] <= 0.5
    imu = s["sensors"]["imu"]
    if kind == "freeze":
        # Every frozen sample after detection (1.3 s) to the end (2.5 s) was kept from the EKF.
        assert imu["frozen"] == 1 and 119 <= imu["withheld_frozen"] <= 121
    else:
        assert imu["withheld_frozen"] == 0
    assert s["ego_filter"]["gnss_outliers"] == 0


def test_frozen_object_sensors_are_kept_from_perception():
    # Classical perception: lidar clustering and radar clusters, each through the synchroniser.
    loop = ClosedLoop(light_scenario("free_road"), RunOptions(seed=0, duration_s=2.5, sensors=True,
                                                                  perception="classical",
                                                                  faults=("lidar:freeze@1",)))
    s = loop.run()
    lidar = s["sensors"]["lidar"]
    # Scans of 1.0, 1.1 and 1.2 s repeat the one of 0.9 s: frozen on the third repeat's arrival;
    # it and the twelve after it (to 2.4 s) never reach the detector.
    assert lidar["frozen"] == 1 and lidar["withheld_frozen"] == 13
    applied = [r.t_ns for r in loop.stack.sync_records if r.stream == "lidar" and r.decision == Decision.APPLIED]
    assert max(applied) == 1_100_000_000  # the last detections fused: the first and second repeats
    assert s["sensors"]["radar"]["withheld_frozen"] == 0


def test_a_wheel_stuck_at_zero_while_moving_is_lost():
    # The freeze rule cannot see it (a speed of exactly 0 repeats legitimately at standstill), and
    # the stream is fresh, finite and on rate; but the EKF refuses every reading. Before, the run
    # stayed NOMINAL on two working ego sensors.
    loop = ClosedLoop(light_scenario("free_road", ("imu", "wheel", "gnss")),
                      RunOptions(seed=0, duration_s=2.0, sensors=True, perception="oracle"))
    capture = loop.rig.capture

    def stuck_wheel(sensor, t_capture_ns, ego, actors):  # a test double for a failed encoder
        arrivals = capture(sensor, t_capture_ns, ego, actors)
        if sensor == "wheel" and t_capture_ns >= 1_000_000_000:
            arrivals = [dataclasses.replace(a, message=WheelSpeed(a.message.t_ns, 0.0)) for a in arrivals]
        return arrivals

    loop.rig.capture = stuck_wheel
    s = loop.run()
    wheel = s["sensors"]["wheel"]
    # Every stuck reading fusion released (1.0 .. 1.88 s; the rest still in the sync window).
    assert wheel["rejected_by_ego_filter"] == 45 and wheel["refused"] == 1
    assert s["modes"] == [{"t_s": s["modes"][0]["t_s"], "mode": "DEGRADED",
                           "reason": "wheel odometry lost; wheel refused: the ego filter rejects its data"}]
    # Released ~0.1 s after capture (the largest sync window); the fifth refusal in a row
    # (safety.max_refused) at the fusion run after 1.08 s's release.
    assert 1.15 < s["modes"][0]["t_s"] <= 1.25
    assert s["collisions"] == 0 and s["ego_filter"]["gnss_outliers"] == 0


def test_a_gnss_receiver_gone_noisy_is_quarantined_for_good():
    # 12x its noise: most fixes fall outside the NIS gate, some pass. Before, it stayed NOMINAL
    # while the passing fixes dragged the estimate off (cut_in: 10 m off the road at 23 m/s).
    s = run("oracle", ("gnss:noise=12@1",), duration_s=6.0, enabled=("imu", "wheel", "gnss"))
    assert [m["mode"] for m in s["modes"]] == ["DEGRADED", "MINIMAL_RISK"]  # no recovery in between
    assert s["modes"][0]["reason"] == "gnss lost: dead reckoning; gnss refused: the ego filter rejects its data"
    assert 1.0 < s["modes"][0]["t_s"] <= 1.7  # five of ten fixes (10 Hz) refused, ~0.1 s in the sync
    assert s["modes"][1]["reason"].endswith("ego localisation lost: position uncertainty over its limit")
    gnss = s["sensors"]["gnss"]
    assert gnss["refused"] == 1
    # After quarantine every fix is judged (refused, or passed and counted quarantined), none applied.
    assert s["ego_filter"]["quarantined"] > 0
    assert gnss["rejected_by_ego_filter"] + s["ego_filter"]["quarantined"] >= 45
    assert s["lane_center_rmse_m"] < 0.3 and s["collisions"] == 0


@pytest.mark.parametrize("fault, lost_reason, latest_s", [
    # 50x: 11% of the samples refused; before, NOMINAL and 0.63 m (RMS) off the lane centre.
    ("imu:noise=50@1", "imu lost; imu inconsistent: its innovations exceed its noise", 1.4),
    # 10x: none refused.
    ("wheel:noise=10@1", "wheel odometry lost; wheel inconsistent: its innovations exceed its noise", 2.2),
])
def test_an_ego_sensor_noisier_than_the_filter_assumes_is_lost(fault, lost_reason, latest_s):
    # Most of its data pass the gates, each pulling the estimate; the NIS window test sees the
    # sum of its innovations grow past what its assumed noise allows (safety/ego_streams.py).
    s = run("oracle", (fault,), duration_s=4.0, enabled=("imu", "wheel", "gnss"))
    sensor = fault.split(":")[0]
    assert s["modes"][0]["reason"] == lost_reason
    assert s["sensors"][sensor]["inconsistent"] == 1 and s["sensors"][sensor]["refused"] == 0
    assert 1.0 < s["modes"][0]["t_s"] <= latest_s
    assert s["collisions"] == 0
    others = {"imu", "wheel", "gnss"} - {sensor}
    assert all(s["sensors"][o]["inconsistent"] == 0 and s["sensors"][o]["refused"] == 0 for o in others)


def test_every_withheld_message_of_a_detector_backlog_is_kept_from_it():
    # A detector with a backlog has several frozen scans queued (latency mode, a slow detector):
    # each must be recognised when its run comes, not only the latest.
    loop = ClosedLoop(light_scenario("free_road"), RunOptions(seed=0, duration_s=1.5, sensors=True,
                                                                  perception="classical", faults=("lidar:freeze@1",)))
    loop.run()
    stack = loop.stack
    lidar_step = next(p for p in stack.steps.perception if p.sensor == "lidar")
    perceived = []
    counting = dataclasses.replace(lidar_step, step=lambda *a: perceived.append(a[1]) or lidar_step.step(*a))
    last = stack._last_accepted["lidar"]
    queued = [dataclasses.replace(last, t_ns=last.t_ns + k * 100_000_000) for k in (1, 2, 3)]
    before = stack.withheld_frozen["lidar"]
    for msg in queued:  # all three arrive before the first run
        stack._on_message(msg.t_ns + 50_000_000, "/sensors/lidar", msg)
    assert stack.withheld_frozen["lidar"] == before + 3
    for msg in queued:
        assert stack._perceive(counting, msg.t_ns + 60_000_000, msg) == []
    assert perceived == []


def test_a_car_that_lost_its_gnss_stops_at_the_firmer_localisation_deceleration():
    # Dead-reckoned, the lateral error grows with every metre: the stop is 3.5 m/s^2, not the
    # comfortable 2 m/s^2 of other minimal-risk stops (safety/rules.py).
    from safety.rules import LOCALISATION_LOST_STOP_DECEL_MPS2
    loop = ClosedLoop(light_scenario("free_road", ("imu", "wheel", "gnss")),
                      RunOptions(seed=0, duration_s=16.0, sensors=True, perception="oracle", faults=("gnss:dropout@1",)))
    samples = []  # (t_s, speed, accel, stop deceleration the monitor asks for)
    for k in range(1, 161):
        loop.advance_to(k * 100_000_000)
        truth, status = loop.world.ego_truth(), loop.stack.bus.latest.get("/safety/status")
        samples.append((k * 0.1, truth.speed_mps, truth.accel_mps2, status.limits.stop_decel_mps2))
    s = loop.summary(1.0)
    assert [m["mode"] for m in s["modes"]] == ["DEGRADED", "MINIMAL_RISK"]
    assert s["modes"][1]["reason"].endswith("position uncertainty over its limit")
    mrm_t = s["modes"][1]["t_s"]
    during = [x for x in samples if x[0] > mrm_t + 0.1]
    assert all(x[3] == LOCALISATION_LOST_STOP_DECEL_MPS2 for x in during)
    v0 = next(x[1] for x in samples if x[0] >= mrm_t)
    stopped_t = next(x[0] for x in during if x[1] < 0.05)
    # v0 / 3.5 plus the jerk-limited onset and the soft end (7.6 s from 21 m/s); at 2 m/s^2 a stop
    # takes more than v0 / 2.
    assert stopped_t - mrm_t < v0 / LOCALISATION_LOST_STOP_DECEL_MPS2 + 2.0 < v0 / 2.0
    assert min(x[2] for x in during) > -(LOCALISATION_LOST_STOP_DECEL_MPS2 + 0.5)  # no harsher than asked
    assert s["collisions"] == 0


def test_after_the_imu_goes_silent_the_healthy_wheel_stays_trusted_and_the_car_stays_stopped():
    # The held acceleration of the last IMU sample drove the prediction through the minimal-risk
    # stop: the speed estimate lagged the braking car, the healthy wheel failed the NIS window test
    # and was quarantined, and with no speed measurement the estimate ran off: the GNSS fixes were
    # refused next and the run ended in EMERGENCY_STOP at 7.41 s (lead_brake with imu:dropout@3 at
    # a 1 - 1e-6 quantile: 4.34 s off the road, 2.39 m/s at the end).
    loop = ClosedLoop(light_scenario("stopped_vehicle", ("imu", "wheel", "gnss")),
                      RunOptions(seed=0, sensors=True, perception="oracle", faults=("imu:dropout@1",)))
    s = loop.run()
    assert [m["mode"] for m in s["modes"]] == ["DEGRADED", "MINIMAL_RISK"]
    assert all(s["sensors"][n]["inconsistent"] == 0 and s["sensors"][n]["refused"] == 0 for n in ("wheel", "gnss"))
    assert s["max_off_road_m"] == 0.0 and s["collisions"] == 0
    assert loop.world.ego_truth().speed_mps < 0.05


def test_hung_detectors_count_their_sensors_lost():
    # A detector that hangs publishes nothing while its sensor's stream stays fresh; in ideal mode
    # the run stayed NOMINAL and the car ran into the lead (rtdrive sim --fault detector:hang@2:
    # 1 collision). Three runs in a row without output now make the sensor lost.
    s = run("classical", ("detector:hang@1",), duration_s=3.0)
    assert s["modes"][-1]["mode"] == "MINIMAL_RISK"
    assert "two of three object sensors lost" in s["modes"][-1]["reason"]
    assert "detector missed 3 runs in a row: no detections" in s["modes"][0]["reason"]
    assert 1.0 < s["modes"][0]["t_s"] < 1.5 and s["collisions"] == 0
