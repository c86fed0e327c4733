import numpy as np
import pytest

from core.messages import GnssFix, ImuSample, WheelSpeed
from fusion.ego_ekf import EgoConfig, EgoFilterState, ego_output, ego_step, ego_update

CFG = EgoConfig()
MS = 1_000_000


def _drive(duration_s: float, rng: np.random.Generator, gnss_sigma_m: float = 1.0,
           gnss_gap_s: tuple[float, float] = (-1.0, -1.0), wheel_scale: float = 0.0, v0_mps: float = 10.0):
    """Truth of a car weaving and changing speed at 1 ms, and its sensor messages in time order."""
    n = int(duration_s * 1000)
    t = np.arange(n) * 1e-3
    w = 0.15 * np.sin(0.3 * t)
    a = 0.6 * np.sin(0.2 * t)
    v = v0_mps + np.cumsum(a) * 1e-3
    yaw = np.cumsum(w) * 1e-3
    x = np.cumsum(v * np.cos(yaw)) * 1e-3
    y = np.cumsum(v * np.sin(yaw)) * 1e-3
    msgs = []
    for k in range(0, n, 10):  # IMU 100 Hz
        msgs.append(ImuSample(k * MS, np.array([a[k] + rng.normal(0, 0.05), 0.0, 9.81]),
                              w[k] + rng.normal(0, 0.01)))
    for k in range(5, n, 20):  # wheel speed 50 Hz
        msgs.append(WheelSpeed(k * MS, (1.0 + wheel_scale) * v[k] + rng.normal(0, 0.1)))
    for k in range(7, n, 100):  # GNSS 10 Hz
        if not gnss_gap_s[0] <= t[k] < gnss_gap_s[1]:
            msgs.append(GnssFix(k * MS, np.array([x[k], y[k]]) + rng.normal(0, gnss_sigma_m, 2), gnss_sigma_m))
    msgs.sort(key=lambda m: m.t_ns)
    return np.stack([x, y, yaw, v, w], axis=1), msgs


def _run(truth, msgs, start=None):
    state = start or EgoFilterState.at(0, truth[0, :3], truth[0, 3], (0.5, 0.5, 0.05), 0.5)
    errors, sigmas = [], []
    for m in msgs:
        state, est = ego_step(state, m, m.t_ns, CFG)
        k = m.t_ns // MS
        errors.append(est.pose[:2] - truth[k, :2])
        sigmas.append(np.sqrt(np.trace(est.covariance[:2, :2])))
    return state, np.array(errors), np.array(sigmas)


def test_position_rmse_with_gnss_sigma_1m():
    truth, msgs = _drive(30.0, np.random.default_rng(1))
    state, err, _ = _run(truth, msgs)
    rmse = np.sqrt(np.mean(np.sum(err[len(err) // 6:] ** 2, axis=1)))
    assert rmse <= 0.3, rmse
    # A 0.999 NIS gate falsely rejects ~1 in 1000 clean fixes; 300 fixes here.
    assert state.counters.gnss_outliers <= 2
    assert state.counters.applied == len(msgs) - state.counters.gnss_outliers


def test_gnss_outlier_is_rejected_by_nis():
    rng = np.random.default_rng(2)
    truth, msgs = _drive(10.0, rng)
    k_bad = next(i for i, m in enumerate(msgs) if isinstance(m, GnssFix) and m.t_ns > 5000 * MS)
    bad = msgs[k_bad]
    msgs[k_bad] = GnssFix(bad.t_ns, bad.position_m + np.array([25.0, -10.0]), 1.0)
    state, err, _ = _run(truth, msgs)
    assert state.counters.gnss_outliers == 1
    assert np.abs(err[k_bad:]).max() < 1.5  # the jump never reached the estimate


def test_gnss_dropout_grows_covariance_and_recovers():
    truth, msgs = _drive(20.0, np.random.default_rng(3), gnss_gap_s=(8.0, 13.0))
    _, err, sigma = _run(truth, msgs)
    t = np.array([m.t_ns for m in msgs]) * 1e-9
    in_gap = (t >= 8.0) & (t < 13.0)
    gap_sigma = sigma[in_gap]
    assert gap_sigma[-1] > 2.0 * gap_sigma[0]  # dead reckoning: honest growing uncertainty
    assert np.linalg.norm(err[in_gap], axis=1).max() < 5.0
    assert np.linalg.norm(err[t > 16.0], axis=1).max() < 1.5


def test_nan_stale_and_uninitialised_messages_are_counted_not_applied():
    state = EgoFilterState.empty()
    state = ego_update(state, WheelSpeed(0, 3.0), CFG)
    assert state.t_ns is None and state.counters.waiting_for_gnss == 1
    state = ego_update(state, GnssFix(10 * MS, np.array([5.0, 6.0]), 1.0), CFG)
    assert state.t_ns == 10 * MS
    np.testing.assert_allclose(state.x[:2], [5.0, 6.0])
    before = state
    state = ego_update(state, ImuSample(20 * MS, np.array([np.nan, 0, 9.8]), 0.0), CFG)
    state = ego_update(state, GnssFix(30 * MS, np.array([np.inf, 6.0]), 1.0), CFG)
    state = ego_update(state, WheelSpeed(5 * MS, 3.0), CFG)
    assert state.counters.rejected_nonfinite == 2 and state.counters.stale == 1
    np.testing.assert_array_equal(state.x, before.x)
    assert state.t_ns == before.t_ns
    with pytest.raises(TypeError):
        ego_update(state, "gnss", CFG)


def test_output_predicts_forward_only_and_is_deterministic():
    truth, msgs = _drive(2.0, np.random.default_rng(4))
    a, _, _ = _run(truth, msgs)
    b, _, _ = _run(truth, msgs)
    np.testing.assert_array_equal(a.x, b.x)
    later = ego_output(a, a.t_ns + 500 * MS, CFG)
    assert later.t_ns == a.t_ns + 500 * MS
    assert np.hypot(*(later.pose[:2] - a.x[:2])) == pytest.approx(a.x[3] * 0.5, rel=0.05)
    assert ego_output(a, a.t_ns - MS, CFG).t_ns == a.t_ns
    assert np.all(np.linalg.eigvalsh(later.covariance) > 0)


def test_prediction_cost_stays_bounded_through_a_long_outage(monkeypatch):
    """Within max_substeps * max_step_s (1 s) the sub-steps are max_step_s long; beyond, their
    number stays max_substeps: an output 60 s after the last measurement costs no more than one
    1 s after it, and is still a sane, finite, growing estimate."""
    import fusion.ego_ekf as ekf

    truth, msgs = _drive(2.0, np.random.default_rng(4))
    state, _, _ = _run(truth, msgs)
    calls = []
    real_step = ekf.motion_step
    monkeypatch.setattr(ekf, "motion_step", lambda x, p, a, dt, q: calls.append(dt) or real_step(x, p, a, dt, q))
    short = ego_output(state, state.t_ns + 500 * MS, CFG)
    assert len(calls) == 10 and calls[0] == pytest.approx(0.05)
    calls.clear()
    long = ego_output(state, state.t_ns + 60_000 * MS, CFG)
    assert len(calls) == CFG.max_substeps == 20 and calls[0] == pytest.approx(3.0)
    assert np.isfinite(long.pose).all() and np.isfinite(long.covariance).all()
    assert np.trace(long.covariance[:2, :2]) > np.trace(short.covariance[:2, :2])


def test_wheel_scale_error_is_estimated_and_leaves_no_along_track_bias():
    # A tyre reading 1 % fast at 25 m/s: without the scale state the estimate runs ahead of the car.
    truth, msgs = _drive(60.0, np.random.default_rng(4), gnss_sigma_m=0.5, wheel_scale=0.01, v0_mps=25.0)
    state, err, _ = _run(truth, msgs)
    assert state.x[5] == pytest.approx(0.01, abs=0.002)
    yaw = truth[[m.t_ns // MS for m in msgs], 2]
    along = err[:, 0] * np.cos(yaw) + err[:, 1] * np.sin(yaw)
    late = len(along) // 2
    assert abs(along[late:].mean()) < 0.05
    assert np.sqrt(np.mean(np.sum(err[late:] ** 2, axis=1))) <= 0.3


@pytest.mark.parametrize("heading_rad", [-3.0, -2.25, -1.5, -0.75, 0.0, 0.75, 1.5, 2.25, 3.0])
def test_started_from_gnss_without_heading_converges_at_any_heading(heading_rad):
    """Without a prior the first fix seeds yaw 0 with sigma pi; an EKF that far off never recovered
    (its predictions ran away and the NIS gate rejected every fix). The heading now comes from the
    course between the first fix and one heading_bootstrap_m away."""
    rng = np.random.default_rng(3)
    u = np.array([np.cos(heading_rad), np.sin(heading_rad)])
    state = EgoFilterState.empty()
    outliers_at_bootstrap = None
    for k in range(1200):  # 12 s at 10 m/s
        t = k * 10 * MS
        state = ego_update(state, ImuSample(t, np.array([0.0, 0.0, 9.81]), 0.0), CFG)
        if k % 10 == 3:
            ts = t + 3 * MS
            state = ego_update(state, GnssFix(ts, 10.0 * ts * 1e-9 * u + rng.normal(0, 1.0, 2), 1.0), CFG)
            if outliers_at_bootstrap is None and state.counters.heading_bootstraps:
                outliers_at_bootstrap = state.counters.gnss_outliers
        if k % 2:
            state = ego_update(state, WheelSpeed(t + 5 * MS, 10.0), CFG)
    assert state.counters.stale == 0
    assert state.counters.heading_bootstraps == 1 and state.heading_anchor is None
    assert abs(np.remainder(state.x[2] - heading_rad + np.pi, 2 * np.pi) - np.pi) < 0.05
    assert np.hypot(*(state.x[:2] - 10.0 * state.t_ns * 1e-9 * u)) < 1.0
    # Before the bootstrap (the first ~10 m) a filter heading the wrong way may reject fixes; after
    # it, a 0.999 gate rejects ~1 in 1000 clean ones (about 110 here).
    assert state.counters.gnss_outliers - outliers_at_bootstrap <= 2


def test_a_filter_started_from_a_prior_never_bootstraps_its_heading():
    truth, msgs = _drive(5.0, np.random.default_rng(4))
    state, _, _ = _run(truth, msgs)
    assert state.heading_anchor is None and state.counters.heading_bootstraps == 0


class _UnicycleEKF:
    """filterpy's ExtendedKalmanFilter with the ego filter's motion model: the reference the
    compiled filter is held to."""

    def __init__(self, state: EgoFilterState):
        from filterpy.kalman import ExtendedKalmanFilter

        class Unicycle(ExtendedKalmanFilter):
            def predict_x(self, u=0):
                px, py, yaw, v, w, scale = self.x[:, 0]
                mid = yaw + 0.5 * w * self.dt
                self.x = np.array([[px + v * self.dt * np.cos(mid)], [py + v * self.dt * np.sin(mid)],
                                   [yaw + w * self.dt], [v + self.accel * self.dt], [w], [scale]])

        self.kf = Unicycle(dim_x=6, dim_z=1)
        self.kf.x, self.kf.P = state.x.reshape(6, 1).copy(), state.p.copy()
        self.kf.accel, self.t_ns = 0.0, state.t_ns

    def step(self, msg):
        kf = self.kf
        kf.dt = dt = (msg.t_ns - self.t_ns) * 1e-9
        self.t_ns = msg.t_ns
        _, _, yaw, v, w, _ = kf.x[:, 0]
        mid, f = yaw + 0.5 * w * dt, np.eye(6)
        f[0, 2], f[0, 3], f[0, 4] = -v * dt * np.sin(mid), dt * np.cos(mid), -0.5 * v * dt * dt * np.sin(mid)
        f[1, 2], f[1, 3], f[1, 4] = v * dt * np.cos(mid), dt * np.sin(mid), 0.5 * v * dt * dt * np.cos(mid)
        f[2, 4] = dt
        kf.F = f
        kf.Q = np.diag(np.array([CFG.pos_sigma_mps, CFG.pos_sigma_mps, CFG.yaw_sigma_rps, CFG.accel_sigma_mps2,
                                 CFG.yaw_accel_sigma_rps2, CFG.wheel_scale_sigma_per_sqrt_s]) ** 2 * dt)
        kf.predict()
        if isinstance(msg, ImuSample):
            kf.accel = float(msg.accel_mps2[0])
            h = np.eye(6)[4:5]
            kf.update(np.array([[msg.yaw_rate_rps]]), lambda x: h, lambda x: h @ x,
                      R=np.array([[CFG.imu_yaw_rate_sigma_rps**2]]))
        elif isinstance(msg, WheelSpeed):
            def jac(x):
                return np.array([[0.0, 0.0, 0.0, 1.0 + x[5, 0], 0.0, x[3, 0]]])
            kf.update(np.array([[msg.speed_mps]]), jac, lambda x: np.array([[(1.0 + x[5, 0]) * x[3, 0]]]),
                      R=np.array([[CFG.wheel_speed_sigma_mps**2]]))
        else:
            h = np.eye(6)[:2]
            kf.update(msg.position_m.reshape(2, 1), lambda x: h, lambda x: h @ x,
                      R=np.eye(2) * max(msg.sigma_m, CFG.gnss_sigma_floor_m) ** 2)


def test_the_filter_equals_filterpys_extended_kalman_filter():
    """Twenty seconds of IMU, wheel speed and GNSS (10 ms apart at most, so one prediction step per
    message) through ego_update and through filterpy's EKF with the same models: equal to 1e-9."""
    truth, msgs = _drive(20.0, np.random.default_rng(11))
    state = EgoFilterState.at(0, truth[0, :3], truth[0, 3], (0.5, 0.5, 0.05), 0.5)
    ref = _UnicycleEKF(state)
    for msg in msgs:
        state = ego_update(state, msg, CFG)
        ref.step(msg)
        np.testing.assert_allclose(state.x, ref.kf.x[:, 0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(state.p, ref.kf.P, rtol=1e-9, atol=1e-12)
    assert state.counters.gnss_outliers == 0 and state.counters.applied == len(msgs)


@pytest.mark.parametrize("corrupt, counter", [
    (lambda m: WheelSpeed(m.t_ns, 1e200), "wheel_outliers"),
    (lambda m: WheelSpeed(m.t_ns, -80.0), "wheel_outliers"),
    (lambda m: ImuSample(m.t_ns, np.array([1e200, 0.0, 9.81]), 0.0), "imu_outliers"),
    (lambda m: ImuSample(m.t_ns, m.accel_mps2, 1e5), "imu_outliers"),
], ids=["wheel_1e200", "wheel_backwards_80", "imu_accel_1e200", "imu_yaw_rate_1e5"])
def test_a_finite_but_absurd_motion_sample_is_refused_and_counted(corrupt, counter):
    # A corrupt frame with a finite value passes the NaN screen; applied, a wheel speed of 1e200
    # overflowed the update and left a NaN filter for good (every later GNSS NIS NaN, "applied").
    truth, msgs = _drive(10.0, np.random.default_rng(3))
    kind = WheelSpeed if counter == "wheel_outliers" else ImuSample
    k_bad = next(i for i, m in enumerate(msgs) if isinstance(m, kind) and m.t_ns > 3000 * MS)
    msgs[k_bad] = corrupt(msgs[k_bad])
    state, err, _ = _run(truth, msgs)
    assert getattr(state.counters, counter) == 1
    assert state.counters.nonfinite_updates == 0
    assert np.isfinite(state.x).all() and np.isfinite(state.p).all()
    assert np.abs(err[k_bad:]).max() < 1.5  # the corrupt sample never reached the estimate
    clean_state, _, _ = _run(*_drive(10.0, np.random.default_rng(3)))
    assert state.counters.applied == clean_state.counters.applied - 1


def test_the_motion_gate_passes_the_noise_of_a_clean_drive():
    truth, msgs = _drive(30.0, np.random.default_rng(4))
    state, _, _ = _run(truth, msgs)
    assert state.counters.imu_outliers == state.counters.wheel_outliers == 0


def test_an_update_that_overflows_is_refused_and_counted():
    # The last line of defence behind the gates: a non-finite update result is never kept.
    from fusion import ego_ekf
    state = EgoFilterState.at(0, np.zeros(3), 10.0, (0.5, 0.5, 0.05), 0.5)
    h = np.zeros((1, 6))
    h[0, 3] = 1.0
    out = ego_ekf._update(state, np.array([np.inf]), h, np.array([[0.01]]), np.inf)
    assert out.counters.nonfinite_updates == 1 and out.counters.applied == 0
    np.testing.assert_array_equal(out.x, state.x)
    assert out.measured_ns == state.measured_ns == 0


def test_measured_time_moves_with_applied_messages_only():
    state = EgoFilterState.at(0, np.zeros(3), 10.0, (0.5, 0.5, 0.05), 0.5)
    state = ego_update(state, WheelSpeed(20 * MS, 10.0), CFG)
    assert state.t_ns == state.measured_ns == 20 * MS
    state = ego_update(state, GnssFix(100 * MS, np.array([500.0, 300.0]), 1.0), CFG)  # an outlier
    assert state.counters.gnss_outliers == 1
    assert state.t_ns == 100 * MS and state.measured_ns == 20 * MS


def test_an_imu_gone_silent_stops_driving_the_prediction_and_its_speed_noise_widens():
    from fusion.ego_ekf import _predict
    cfg = EgoConfig()
    state = EgoFilterState.at(0, np.zeros(3), 10.0, (0.5, 0.5, 0.05), 0.5)
    state = ego_update(state, ImuSample(10_000_000, np.array([2.0, 0.0, 9.81]), 0.0), cfg)
    assert state.accel_mps2 == 2.0 and state.accel_ns == 10_000_000
    fresh = _predict(state, 110_000_000, cfg)  # 0.1 s after the sample: within the timeout
    assert fresh.x[3] == pytest.approx(10.0 + 2.0 * 0.1, abs=1e-9)
    stale = _predict(state, 510_000_000, cfg)  # 0.5 s after: past accel_input_timeout_s (0.25)
    assert stale.x[3] == pytest.approx(10.0, abs=1e-9)  # no acceleration taken
    grown = stale.p[3, 3] - state.p[3, 3]
    assert grown == pytest.approx(cfg.unknown_accel_sigma_mps2**2 * 0.5, rel=1e-9)  # q [m^2/s^3] x 0.5 s


def test_a_quarantined_imu_gives_no_acceleration_input_at_once():
    cfg = EgoConfig()
    state = EgoFilterState.at(0, np.zeros(3), 10.0, (0.5, 0.5, 0.05), 0.5)
    state = ego_update(state, ImuSample(10_000_000, np.array([2.0, 0.0, 9.81]), 0.0), cfg)
    state = ego_update(state, ImuSample(20_000_000, np.array([2.0, 0.0, 9.81]), 0.0), cfg, apply=False)
    assert state.accel_mps2 == 0.0 and state.accel_ns is None
