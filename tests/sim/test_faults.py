import math

import numpy as np
import pytest

from core.messages import CameraImage, ImuSample, LidarScan, WheelSpeed
from sim.faults import (FaultSpecError, FaultState, apply_faults, check_fault_windows, noise_multiplier,
                        parse_fault, parse_faults)
from sim.sensors.arrival import Arrival

MS = 1_000_000


def lidar_msg(t_ns, value=1.0):
    pts = np.full((50, 3), value, np.float32)
    return LidarScan(t_ns, "lidar", pts, np.full(50, 0.5, np.float32), np.zeros(50, np.int32))


def stream(spec, make=lidar_msg, n=100, period_ms=100, latency_ms=50, seed=0):
    """Feed n captures (t = k * period) through the faults; returns (kept arrivals per k, state)."""
    faults = parse_faults([spec]) if spec else ()
    state = FaultState(max_latency_ns=latency_ms * MS)
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(n):
        t = k * period_ms * MS
        state, arrivals = apply_faults(Arrival(t + latency_ms * MS, "lidar", make(t, float(k)), t), faults, rng, state)
        out[k] = arrivals
    return out, state


def inside(k):  # window 2 s - 4 s at 100 ms captures: k = 20 .. 39
    return 20 <= k < 40


def test_parse_syntax_and_windows():
    f = parse_fault("radar:delay=0.3@2-4")
    assert (f.target, f.kind, f.value, f.start_s, f.end_s) == ("radar", "delay", 0.3, 2.0, 4.0)
    assert parse_fault("lidar:dropout@5").end_s == math.inf and parse_fault("lidar:dropout").start_s == 0.0
    assert parse_fault("camera:nan=0.01@3").value == 0.01
    assert str(parse_fault("radar:delay=0.3@2-4")) == "radar:delay=0.3@2-4"
    for stage in ("detector:exception@1", "planner:slow=5@2", "planner:hang@3"):
        assert parse_fault(stage).is_stage
    f = parse_fault("imu:skew=0.1@1-2")
    assert not f.active(999_999_999) and f.active(1_000_000_000) and not f.active(2_000_000_000)


@pytest.mark.parametrize("spec, fragment", [
    ("sonar:dropout", "unknown target 'sonar'"), ("lidar:melt", "unknown kind 'melt'"),
    ("planner:dropout", "unknown kind 'dropout' for planner"), ("lidar:delay", "needs a value"),
    ("lidar:freeze=2", "takes no value"), ("lidar:nan=1.5", "out of range"), ("lidar:delay=x", "not a number"),
    ("lidar:dropout@4-2", "START < END"), ("gnss:jump=1@2-3", "takes no END"), ("lidar", "unknown target"),
])
def test_bad_specs_give_one_line_errors(spec, fragment):
    with pytest.raises(FaultSpecError) as err:
        parse_fault(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_window_times_in_scientific_notation_and_negative_start():
    """@1e-3 was split at its exponent's '-' (START '1e'); @-3 at its sign (START '')."""
    assert parse_fault("lidar:dropout@1e-3").start_s == 1e-3
    f = parse_fault("radar:delay=1e-2@1e-3-2.5e+0")
    assert (f.value, f.start_s, f.end_s) == (1e-2, 1e-3, 2.5)
    assert parse_fault("lidar:dropout@2E-1-3").end_s == 3.0
    with pytest.raises(FaultSpecError, match=r"START -3 is negative; a window starts at 0 s or later"):
        parse_fault("lidar:dropout@-3")
    with pytest.raises(FaultSpecError, match="START -1 is negative"):
        parse_fault("lidar:dropout@-1-2")
    with pytest.raises(FaultSpecError, match="START < END"):
        parse_fault("lidar:dropout@2--3")


def test_a_window_starting_after_the_run_is_refused():
    faults = parse_faults(["lidar:dropout@5", "radar:delay=0.3@2-30"])
    check_fault_windows(faults, 25.0)  # an END past the run is fine: the fault lasts to the end
    with pytest.raises(FaultSpecError, match=r"'lidar:dropout@5': starts at 5 s, not before the run ends at 5 s"):
        check_fault_windows(faults, 5.0)


def test_unknown_kind_lists_allowed():
    with pytest.raises(FaultSpecError, match="allowed: dropout, intermittent=P, freeze, delay=S"):
        parse_fault("lidar:explode@1")


def test_dropout_only_inside_window():
    out, state = stream("lidar:dropout@2-4")
    assert all((len(a) == 0) == inside(k) for k, a in out.items())
    assert state.counters.as_dict() == {"messages": 80, "dropped": 20, "late": 0, "nonfinite": 0, "faulted": 20}


def test_intermittent_drops_a_fraction_inside_window():
    out, state = stream("lidar:intermittent=0.5@2-4", n=40)
    assert all(len(out[k]) == 1 for k in range(20))
    lost = sum(len(out[k]) == 0 for k in range(20, 40))
    assert 4 <= lost <= 16 and state.counters.dropped == lost


def test_freeze_repeats_last_payload_with_fresh_time():
    out, _ = stream("lidar:freeze@2-4")
    for k, (a,) in out.items():
        assert a.message.t_ns == k * 100 * MS
        expected = 19.0 if inside(k) else float(k)
        assert a.message.points[0, 0] == expected


def test_delay_and_late_counter():
    out, state = stream("lidar:delay=0.3@2-4")
    for k, (a,) in out.items():
        assert a.arrival_ns - a.capture_ns == (350 if inside(k) else 50) * MS
    assert state.counters.late == 20 and state.counters.messages == 100


def test_skew_offsets_t_ns_in_window_and_jump_persists():
    out, _ = stream("lidar:skew=-0.2@2-4")
    assert all(a.message.t_ns - a.capture_ns == (-200 * MS if inside(k) else 0) for k, (a,) in out.items())
    out, _ = stream("lidar:jump=1.5@2")
    assert all(a.message.t_ns - a.capture_ns == (1500 * MS if k >= 20 else 0) for k, (a,) in out.items())


def test_noise_multiplier_only_in_window():
    faults = parse_faults(["lidar:noise=3@2-4", "lidar:noise=2@3", "radar:noise=9"])
    assert noise_multiplier(faults, "lidar", 1_000 * MS) == 1.0
    assert noise_multiplier(faults, "lidar", 2_500 * MS) == 3.0
    assert noise_multiplier(faults, "lidar", 3_500 * MS) == 6.0
    assert noise_multiplier(faults, "lidar", 5_000 * MS) == 2.0
    out, state = stream("lidar:noise=3@2-4")  # the stream itself is untouched, but counted as faulted
    assert state.counters.faulted == 20 and all(a.message.points[0, 0] == k for k, (a,) in out.items())


def test_nan_fraction_and_nonfinite_counter():
    out, state = stream("lidar:nan=0.2@2-4")
    fractions = []
    for k, (a,) in out.items():
        bad = ~np.isfinite(a.message.points)
        if inside(k):
            fractions.append(bad.mean())
        else:
            assert not bad.any()
    assert 0.12 < np.mean(fractions) < 0.28
    assert state.counters.nonfinite == sum(f > 0 for f in fractions)


def test_nan_on_scalars_and_images():
    out, _ = stream("imu:nan=1", make=lambda t, v: ImuSample(t, np.ones(3), 0.1))
    assert out[0][0].message.yaw_rate_rps == 0.1  # the fault addresses imu, not this lidar stream
    faults = parse_faults(["lidar:nan=1"])
    state = FaultState(max_latency_ns=0)
    msg = WheelSpeed(0, 3.0)
    _, (a,) = apply_faults(Arrival(0, "lidar", msg, 0), faults, np.random.default_rng(0), state)
    assert not math.isfinite(a.message.speed_mps)
    img = CameraImage(0, "camera", np.zeros((4, 4, 3), np.uint8))
    _, (a,) = apply_faults(Arrival(0, "camera", img, 0), parse_faults(["camera:nan=1"]), np.random.default_rng(0), state)
    assert a.message.image.dtype == np.uint8 and np.all(a.message.image == 255)


def test_corrupt_changes_shape_only_in_window():
    out, _ = stream("lidar:corrupt@2-4")
    for k, (a,) in out.items():
        assert (a.message.points.shape != (50, 3)) == inside(k)
    assert out[25][0].message.points.shape == (149,)
    _, (a,) = apply_faults(Arrival(0, "wheel", WheelSpeed(0, 1.0), 0), parse_faults(["wheel:corrupt"]),
                           np.random.default_rng(0), FaultState(0))
    assert np.shape(a.message.speed_mps) == (2,)


def test_faults_on_other_sensors_and_stages_leave_stream_alone():
    faults = parse_faults(["radar:dropout", "planner:hang@0"])
    state = FaultState(max_latency_ns=MS)
    arr = Arrival(MS, "lidar", lidar_msg(0), 0)
    state, out = apply_faults(arr, faults, np.random.default_rng(0), state)
    assert out == [arr] and state.counters.faulted == 0 and state.counters.messages == 1
