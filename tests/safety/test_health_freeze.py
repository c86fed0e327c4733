"""A sensor that keeps delivering fresh messages with the same data is frozen, and the monitor treats
it as lost (safety/health.py repeats_previous, stream_frozen). Before, a frozen stream was alive and
NOMINAL for as long as it lasted."""
import numpy as np
import pytest

from core.config import ConfigError, from_mapping
from core.messages import CameraImage, GnssFix, ImuSample, Mode, RadarScan, WheelSpeed
from safety.health import (FreezeConfig, HealthState, StreamSpec, observe, repeats_previous, stream_alive,
                           stream_frozen)
from safety.monitor import DEFAULT_RULES, MonitorState, SafetyConfig, safety_step

MS = 1_000_000


def _imu(t_ns, accel=(0.1, -0.2, 9.81), yaw_rate=0.01):
    return ImuSample(t_ns, np.array(accel), yaw_rate)


def _radar(t_ns, n=0, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.random((4, n)).astype(np.float32)
    return RadarScan(t_ns, "radar", *f)


def test_a_repeat_is_equal_content_not_the_same_object():
    # New buffers holding the same values, as a real frozen sensor delivers them.
    assert repeats_previous(_imu(0), _imu(10 * MS))
    assert not repeats_previous(_imu(0), _imu(10 * MS, accel=(0.1, -0.2, 9.8100001)))
    assert not repeats_previous(_imu(0), _imu(10 * MS, yaw_rate=0.0100001))
    assert not repeats_previous(None, _imu(0)) and not repeats_previous(WheelSpeed(0, 1.0), _imu(1))
    image = np.random.default_rng(1).integers(0, 256, (54, 96, 3), dtype=np.uint8)
    assert repeats_previous(CameraImage(0, "camera", image), CameraImage(1, "camera", image.copy()))
    changed = image.copy()
    changed[27, 50, 1] ^= 1  # one grey level of one pixel, off the sampled elements
    assert not repeats_previous(CameraImage(0, "camera", image), CameraImage(1, "camera", changed))
    jpeg = CameraImage(0, "camera", np.zeros((0, 0, 3), np.uint8), b"\xff\xd8 a frame")
    assert repeats_previous(jpeg, CameraImage(1, "camera", np.zeros((0, 0, 3), np.uint8), b"\xff\xd8 a frame"))
    nan_fix = GnssFix(0, np.array([np.nan, 1.0]), 0.5)
    assert not repeats_previous(nan_fix, GnssFix(1, np.array([np.nan, 1.0]), 0.5))


def test_data_that_may_legitimately_repeat_never_counts():
    # The wheel encoders at standstill read exactly 0; a radar with nothing in view returns nothing.
    assert not repeats_previous(WheelSpeed(0, 0.0), WheelSpeed(20 * MS, 0.0))
    assert repeats_previous(WheelSpeed(0, 12.5), WheelSpeed(20 * MS, 12.5))
    assert not repeats_previous(_radar(0), _radar(50 * MS))
    assert repeats_previous(_radar(0, n=3), _radar(50 * MS, n=3))


def _feed(messages, spec, h=HealthState(), previous=None):
    for msg in messages:
        h = observe(h, spec.name, msg.t_ns, msg.t_ns, repeated=repeats_previous(previous, msg),
                    max_repeats=spec.max_repeats)
        previous = msg
    return h, previous


def test_a_stream_is_frozen_after_max_repeats_in_a_row_and_thaws_on_new_data():
    spec = StreamSpec("imu", period_ns=10 * MS, max_repeats=30)
    h, last = _feed([_imu(k * 10 * MS, accel=(0.01 * k, 0.0, 9.81)) for k in range(50)], spec)
    assert not stream_frozen(h, spec)
    stuck = [_imu((50 + k) * 10 * MS, accel=last.accel_mps2.copy()) for k in range(30)]
    h, last = _feed(stuck[:29], spec, h, last)
    assert not stream_frozen(h, spec) and h.streams["imu"].frozen_events == 0
    h, last = _feed(stuck[29:], spec, h, last)
    assert stream_frozen(h, spec) and h.streams["imu"].frozen_events == 1
    assert stream_alive(h, spec, 800 * MS)  # fresh messages: alive, but frozen
    h, last = _feed([_imu(800 * MS, accel=(0.5, 0.0, 9.81))], spec, h, last)
    assert not stream_frozen(h, spec) and h.streams["imu"].repeats == 0
    assert not stream_frozen(h, StreamSpec("imu", period_ns=10 * MS))  # max_repeats 0: not watched


def test_default_repeats_are_0_3_s_of_each_sensor_and_the_oracle_streams_are_not_watched():
    cfg = FreezeConfig()
    rates = {"camera": 20.0, "lidar": 10.0, "radar": 20.0, "imu": 100.0, "wheel": 50.0, "gnss": 10.0,
             "oracle": 10.0, "ego": 50.0}
    assert {n: cfg.max_repeats(n, r) for n, r in rates.items()} == {
        "camera": 6, "lidar": 3, "radar": 6, "imu": 30, "wheel": 15, "gnss": 3, "oracle": 0, "ego": 0}
    assert FreezeConfig(hold_s=0.05).max_repeats("lidar", 10.0) == 2  # never a single coincidence
    cfg = from_mapping(SafetyConfig, {"freeze": {"hold_s": 0.5, "repeats": {"gnss": 0, "oracle": 4}}}, "x.toml").freeze
    assert (cfg.max_repeats("lidar", 10.0), cfg.max_repeats("gnss", 10.0), cfg.max_repeats("oracle", 10.0)) == (5, 0, 4)
    with pytest.raises(ConfigError, match=r"x\.toml: freeze\.repeats\.gnss"):
        from_mapping(SafetyConfig, {"freeze": {"repeats": {"gnss": -1}}}, "x.toml")
    # A misspelt stream was accepted and the real one kept its default.
    with pytest.raises(ConfigError, match=r"x\.toml: freeze: repeats\.lidr: unknown stream; streams are camera"):
        from_mapping(SafetyConfig, {"freeze": {"repeats": {"lidr": 0}}}, "x.toml")


def _monitor(frozen: tuple[str, ...]):
    """Six sensors delivering fresh messages for 1 s; the ``frozen`` ones repeat their data from 0.5 s."""
    periods_ms = (("camera", 50), ("lidar", 100), ("radar", 50), ("imu", 10), ("wheel", 20), ("gnss", 100))
    specs = tuple(StreamSpec(n, period_ns=p * MS, max_repeats=FreezeConfig().max_repeats(n, 1000 / p))
                  for n, p in periods_ms)
    h, state, previous, statuses = HealthState(), MonitorState(), {}, []
    for t in range(0, 1000, 10):
        for s in specs:
            if t % (s.period_ns // MS) == 0:
                value = 1.0 + (0.5 if s.name in frozen and t >= 500 else t / 1000)
                msg = GnssFix(t * MS, np.array([value, 2.0]), value)  # any message type will do here
                h = observe(h, s.name, t * MS, t * MS, repeated=repeats_previous(previous.get(s.name), msg),
                            max_repeats=s.max_repeats)
                previous[s.name] = msg
        state, status = safety_step(state, h, specs, frozenset(), DEFAULT_RULES, t * MS, SafetyConfig())
        statuses.append(status)
    return state, statuses


def test_the_monitor_treats_a_frozen_stream_as_lost_and_names_it():
    state, _ = _monitor(())
    assert state.transitions == ()
    state, statuses = _monitor(("lidar",))
    # The lidar repeats its 0.5 s scan from 0.6 s on; the third repeat (0.8 s) makes it frozen.
    assert [(tr.t_ns // MS, tr.mode, tr.reason) for tr in state.transitions] == [
        (800, Mode.DEGRADED, "lidar lost; lidar frozen: it repeats its last data")]
    assert statuses[-1].stream_alive["lidar"] is False
    state, _ = _monitor(("imu", "wheel"))
    assert state.mode == Mode.MINIMAL_RISK
    assert "ego localisation lost: two of three ego sensors lost" in state.reason
    assert "imu frozen" in state.reason and "wheel frozen" in state.reason


def test_a_corrupt_message_in_a_frozen_stream_does_not_reset_its_count():
    # The stack compared each message with bus.latest, the last message of any kind: one NaN fix
    # between repeats reset the count, so a frozen GNSS with the odd corrupt fix never froze.
    from runtime.closed_loop import ClosedLoop, RunOptions
    from sim.scenario import load_scenario
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=1.0, sensors=True))
    stack = loop.stack
    spec = next(s for s in stack.stream_specs if s.name == "gnss")
    assert spec.max_repeats == 3
    frozen = np.array([10.0, 2.0])
    fixes = [GnssFix(1_000, frozen.copy(), 0.5), GnssFix(2_000, frozen.copy(), 0.5),
             GnssFix(3_000, np.array([np.nan, 2.0]), 0.5),
             GnssFix(4_000, frozen.copy(), 0.5), GnssFix(5_000, frozen.copy(), 0.5)]
    for fix in fixes:
        stack._on_message(fix.t_ns, "/sensors/gnss", fix)
    h = stack.health.streams["gnss"]
    assert h.nonfinite == 1 and h.repeats == 3 and h.frozen_events == 1
