"""The IMM motion model (constant velocity + coordinated turn) of the tracker: its pieces against
closed forms and references, and the tracker with ``motion_model="imm"`` on simulated targets."""
import numpy as np
import pytest
from scipy.stats import chi2, multivariate_normal

from core.messages import Detections2D
from fusion import kalman, motion_imm
from fusion.sensor_models import CameraModel, RadarModel
from fusion.tracker import tracker_predict, tracker_step
from fusion.tracker_polar import polar_update, polar_update_rows, tracker_step_camera, tracker_step_radar
from fusion.tracker_state import SourceModel, TrackerConfig, TrackerState
from fusion_reference import detections, still_ego

STEP_NS = 100_000_000
SIGMA_M = 0.25
SRC = {"lidar": SourceModel(SIGMA_M, 0.5, 3.1416, 500.0)}
CV_CFG = TrackerConfig(sources=SRC, motion_model="cv")
IMM_CFG = TrackerConfig(sources=SRC, motion_model="imm")


def _spd(rng, n, dim):
    a = rng.normal(size=(n, dim, dim))
    return a @ np.swapaxes(a, 1, 2) + dim * np.eye(dim)


@pytest.mark.parametrize("omega", [0.4, -0.05, 1e-2, 1e-3, 1e-6, 0.0])
def test_ct_jacobian_matches_finite_differences(omega):
    x = np.array([[3.0, -2.0, 15.0, -1.5, omega]])
    dt, h = 0.1, 1e-6
    _, f = motion_imm.ct_transition(x, dt)
    num = np.empty((5, 5))
    for j in range(5):
        e = np.zeros(5)
        e[j] = h
        num[:, j] = (motion_imm.ct_transition(x + e, dt)[0] - motion_imm.ct_transition(x - e, dt)[0])[0] / (2 * h)
    np.testing.assert_allclose(f[0], num, rtol=0, atol=1e-7)


def test_ct_transition_is_exact_on_a_circle_and_cv_without_turn():
    # A point on a circle of radius v / w about the origin stays on it, the velocity turned by w dt.
    v, w, dt = 12.0, 0.3, 0.7
    x = np.array([[v / w, 0.0, 0.0, v, w]])
    x1, _ = motion_imm.ct_transition(x, dt)
    a = w * dt
    np.testing.assert_allclose(x1[0], [v / w * np.cos(a), v / w * np.sin(a), -v * np.sin(a), v * np.cos(a), w],
                               rtol=0, atol=1e-12)
    # Across the series threshold the coefficients are continuous, and at 0 the model is CV.
    for u in (1e-2 * (1 - 1e-12), 1e-2 * (1 + 1e-12)):
        left = np.array(motion_imm.ct_coefficients(np.array([u / dt]), dt))
        exact = [np.sin(u) / (u / dt), (1 - np.cos(u)) / (u / dt)]
        np.testing.assert_allclose(left[:2, 0], exact, rtol=1e-13)
    x0 = np.array([[1.0, 2.0, 3.0, -4.0, 0.0]])
    x1, f = motion_imm.ct_transition(x0, dt)
    np.testing.assert_array_equal(x1[0], [1.0 + 3.0 * dt, 2.0 - 4.0 * dt, 3.0, -4.0, 0.0])
    np.testing.assert_allclose(f[0, :4, :4], kalman.cv_transition(dt), rtol=0, atol=1e-15)


def test_mixing_and_combination_are_moment_matching():
    rng = np.random.default_rng(1)
    n = 6
    xm, pm = rng.normal(size=(n, 2, 5)), _spd(rng, 2 * n, 5).reshape(n, 2, 5, 5)
    mu = rng.dirichlet([1.0, 1.0], n)
    # Identity transitions: no mixing at all.
    x0, p0, c = motion_imm.mix(xm, pm, mu, np.eye(2))
    np.testing.assert_allclose(x0, xm, atol=1e-12)
    np.testing.assert_allclose(p0, pm, atol=1e-12)
    np.testing.assert_allclose(c, mu, atol=1e-15)
    # One track by hand.
    pi = motion_imm.transition_matrix(0.1, 0.9)
    x0, p0, c = motion_imm.mix(xm, pm, mu, pi)
    i = 3
    for j in range(2):
        w = mu[i] * pi[:, j] / (mu[i] @ pi[:, j])
        xj = w @ xm[i]
        pj = sum(w[k] * (pm[i, k] + np.outer(xm[i, k] - xj, xm[i, k] - xj)) for k in range(2))
        np.testing.assert_allclose(x0[i, j], xj, atol=1e-12)
        np.testing.assert_allclose(p0[i, j], pj, atol=1e-12)
    np.testing.assert_allclose(c.sum(axis=1), 1.0, atol=1e-15)
    x, p = motion_imm.combine(xm, pm, mu)
    xi = mu[i] @ xm[i, :, :4]
    pi_ = sum(mu[i, k] * (pm[i, k, :4, :4] + np.outer(xm[i, k, :4] - xi, xm[i, k, :4] - xi)) for k in range(2))
    np.testing.assert_allclose(x[i], xi, atol=1e-12)
    np.testing.assert_allclose(p[i], pi_, atol=1e-12)
    # The transition scales with the step: none over 0 s, p_stay over 100 ms.
    np.testing.assert_array_equal(motion_imm.transition_matrix(0.0, 0.95), np.eye(2))
    np.testing.assert_allclose(np.diag(motion_imm.transition_matrix(0.1, 0.95)), 0.95)


def test_probability_update_survives_underflow_nan_and_inf():
    c = np.array([[0.9, 0.1], [0.5, 0.5], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]])
    ll = np.array([[-1e6, -1e6 - 3.0],  # both underflow exp(): compared in log space
                   [np.nan, -2.0],  # a NaN likelihood counts as zero
                   [-np.inf, -np.inf],  # nothing to learn: keep the prediction
                   [np.nan, np.nan],
                   [0.0, -5000.0]])  # one model all but impossible: floored, not zero
    mu = motion_imm.update_probabilities(c, ll, 1e-3)
    assert np.isfinite(mu).all()
    np.testing.assert_allclose(mu.sum(axis=1), 1.0, atol=1e-15)
    assert mu[0, 0] > 0.99
    np.testing.assert_allclose(mu[1], [1e-3 / 1.001, 1.0 / 1.001])
    np.testing.assert_allclose(mu[2], c[2])
    np.testing.assert_allclose(mu[3], c[3])
    assert mu[4, 1] == pytest.approx(1e-3 / 1.001)


@pytest.mark.parametrize("m", [2, 4])
def test_update_leading_loglik_matches_the_gaussian_and_the_plain_update(m):
    rng = np.random.default_rng(2)
    n = 20
    x, p = rng.normal(size=(n, 5)), _spd(rng, n, 5)
    z, r = rng.normal(size=(n, m)), _spd(rng, n, m) * 0.1
    x1, p1, ll = kalman.update_leading_loglik(x, p, z, r)
    x2, p2 = kalman.update_leading(x, p, z, r)
    np.testing.assert_allclose(x1, x2, atol=1e-12)
    np.testing.assert_allclose(p1, p2, atol=1e-12)
    for i in range(n):
        ref = multivariate_normal(x[i, :m], p[i, :m, :m] + r[i]).logpdf(z[i])
        assert ll[i] == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("with_rate", [False, True])
def test_polar_row_update_with_an_unrelated_turn_rate_equals_the_4d_ekf(with_rate):
    rng = np.random.default_rng(3)
    n = 5
    x4 = np.c_[rng.uniform(10, 40, (n, 2)), rng.normal(size=(n, 2))]
    p4 = _spd(rng, n, 4) * 0.3
    m = 3 if with_rate else 2
    z = np.c_[np.hypot(x4[:, 0], x4[:, 1]) + 0.3, np.arctan2(x4[:, 1], x4[:, 0]) + 0.01,
              rng.normal(size=(n, 1))][:, :m]
    r = np.broadcast_to(np.diag([0.25, 4e-4, 0.09][:m]), (n, m, m)).copy()
    pose, pose_cov, mount = np.zeros(3), np.diag([0.01, 0.01, 1e-5]), np.array([3.7, 0.0])
    x5 = np.c_[x4, np.full(n, 0.05)]
    p5 = np.zeros((n, 5, 5))
    p5[:, :4, :4], p5[:, 4, 4] = p4, 0.01
    xa, pa, nis = polar_update(x4, p4, np.arange(n), z, r, pose, pose_cov, mount)
    xb, pb, ll = polar_update_rows(x5, p5, z, r, pose, pose_cov, mount)
    np.testing.assert_allclose(xb[:, :4], xa, atol=1e-12)
    np.testing.assert_allclose(pb[:, :4, :4], pa, atol=1e-12)
    np.testing.assert_allclose(xb[:, 4], 0.05)  # uncorrelated: the turn rate learns nothing
    np.testing.assert_allclose(pb[:, 4, 4], 0.01)
    assert np.isfinite(ll).all() and (ll < 0.5 * 0 + 10).all()
    # ll = -(nis + ln det S + m ln 2 pi) / 2: the NIS part agrees with polar_update's.
    assert np.all(-2.0 * ll - m * np.log(2 * np.pi) >= nis - 50.0)


def _straight_runs(cfg, runs, steps, q, rng):
    """``runs`` targets far apart following the white-acceleration model of psd ``q``."""
    i = np.arange(runs)
    x = np.c_[(i % 10) * 100.0 - 450.0, (i // 10) * 100.0 - 300.0, np.tile([4.0, 1.0], (runs, 1))]
    state, dt = TrackerState.empty(), STEP_NS * 1e-9
    for k in range(steps):
        t = k * STEP_NS
        if k:
            a = rng.normal(0, np.sqrt(q / dt), (runs, 2))
            x = np.c_[x[:, :2] + x[:, 2:] * dt + 0.5 * a * dt**2, x[:, 2:] + a * dt]
        z = x[:, :2] + rng.normal(0, SIGMA_M, (runs, 2))
        state, out = tracker_step(state, detections(t, z), still_ego(t), t, cfg)
    return state, out, x


def test_imm_nees_of_constant_velocity_target_is_consistent():
    rng = np.random.default_rng(11)
    runs, q = 60, 0.5
    # The truth follows the white acceleration both models assume; the turn model's turn-rate
    # noise is extra doubt that a straight target never uses.
    cfg = TrackerConfig(accel_psd_m2ps3=q, ct_accel_psd_m2ps3=q, gate_probability=0.999999, sources=SRC,
                        motion_model="imm")
    state, out, x = _straight_runs(cfg, runs, 40, q, rng)
    assert len(state) == runs
    e = state.x - x
    nees = np.einsum("ni,ni->n", e, np.linalg.solve(state.p, e[..., None])[..., 0])
    lo, hi = chi2.ppf([0.025, 0.975], 4 * runs) / runs
    assert lo <= nees.mean() <= hi
    # The public output is the 4-D combination, whatever the internal state.
    assert out.states.shape == (runs, 4) and out.covariances.shape == (runs, 4, 4)
    assert state.xm.shape == (runs, 2, 5) and state.pm.shape == (runs, 2, 5, 5)
    np.testing.assert_allclose(state.mode_prob.sum(axis=1), 1.0, atol=1e-12)


def _lane_change(cfg, runs=60, seed=5, steps=50, onset=20, speed=15.0, ay=2.0):
    """Targets at ``speed`` along x; from step ``onset`` a lateral acceleration ``ay`` for 1 s,
    then a constant lateral speed. Returns per step: mean lateral velocity lag (truth - track,
    over the runs: the bias, not the noise) and the mean turn-model probability."""
    rng = np.random.default_rng(seed)
    i = np.arange(runs)
    x = np.c_[(i % 10) * 80.0, (i // 10) * 50.0, np.full(runs, speed), np.zeros(runs)]
    state, lag, mu_ct, dt = TrackerState.empty(), [], [], STEP_NS * 1e-9
    for k in range(steps):
        if k:
            a = ay if onset <= k - 1 < onset + 10 else 0.0
            x[:, 0] += x[:, 2] * dt
            x[:, 1] += x[:, 3] * dt + 0.5 * a * dt * dt
            x[:, 3] += a * dt
        z = x[:, :2] + rng.normal(0, SIGMA_M, (runs, 2))
        state, _ = tracker_step(state, detections(k * STEP_NS, z), still_ego(k * STEP_NS), k * STEP_NS, cfg)
        assert state.ids.tolist() == list(range(1, runs + 1))
        lag.append(float((x[:, 3] - state.x[:, 3]).mean()))
        mu_ct.append(float(state.mode_prob[:, motion_imm.CT].mean()) if state.mode_prob.shape[1] else 0.0)
    return np.array(lag), np.array(mu_ct)


def test_imm_follows_a_lane_change_with_less_lateral_lag_than_cv():
    onset = 20
    cv_lag, _ = _lane_change(CV_CFG, onset=onset)
    imm_lag, mu_ct = _lane_change(IMM_CFG, onset=onset)
    end = onset + 10  # 1 s after the onset, the end of the lateral acceleration (truth 2 m/s)
    assert cv_lag[end] > 0.4  # the CV filter's lag that motivates the IMM
    assert imm_lag[end] < 0.6 * cv_lag[end]
    # Never behind the CV filter while the target accelerates sideways ...
    assert (imm_lag[onset + 3:end + 1] <= cv_lag[onset + 3:end + 1] + 0.02).all()
    # ... at the price of an overshoot once it stops (the turn rate has to unwind): bounded.
    assert np.abs(imm_lag[end + 1:]).max() < 0.4
    # The turn model gains weight during the turn.
    before = mu_ct[onset - 5:onset + 1].mean()
    assert mu_ct[end] > before + 0.05


def test_imm_is_deterministic_and_never_applies_a_nan():
    def run():
        rng = np.random.default_rng(4)
        state = TrackerState.empty()
        for k in range(15):
            t = k * STEP_NS
            z = np.array([[10.0 + 2.0 * t * 1e-9, 3.0], [30.0, -5.0 + 1.0 * t * 1e-9]]) + rng.normal(0, 0.2, (2, 2))
            state, out = tracker_step(state, detections(t, z), still_ego(t), t, IMM_CFG)
        return state, out

    a, out_a = run()
    b, out_b = run()
    for name in ("x", "p", "xm", "pm", "mode_prob"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(out_a.states, out_b.states)
    t = 15 * STEP_NS
    bad = detections(t, np.array([[np.nan, 3.0], [40.0, np.inf]]))
    state, out = tracker_step(a, bad, still_ego(t), t, IMM_CFG)
    assert state.counters.rejected_nonfinite == 2
    assert len(state) == 2 and len(out) == 2
    for name in ("x", "p", "xm", "pm", "mode_prob"):
        assert np.isfinite(getattr(state, name)).all()
    np.testing.assert_allclose(state.mode_prob.sum(axis=1), 1.0, atol=1e-12)
    # A NaN velocity is used as position only, and counted, as under CV.
    nan_vel = detections(t, np.array([[40.0, 3.0]]), vel=np.array([[np.nan, 0.0]]),
                         vel_valid=np.array([True]))
    state2, _ = tracker_step(state, nan_vel, still_ego(t), t, IMM_CFG)
    assert state2.counters.invalidated_velocity == 1
    assert np.isfinite(state2.xm).all()
    # Prediction for output never changes the state and keeps the 4-D shape.
    pred = tracker_predict(state, t + 5 * STEP_NS, IMM_CFG)
    assert pred.states.shape == (2, 4) and np.isfinite(pred.covariances).all()


def test_cv_state_carries_no_models_and_imm_takes_over_a_cv_state():
    rng = np.random.default_rng(6)
    state, _, _ = _straight_runs(CV_CFG, 4, 5, 0.5, rng)
    assert state.mode_prob.shape == (4, 0) and state.xm.shape == (4, 0, 5)
    t = 5 * STEP_NS
    z = state.x[:, :2] + state.x[:, 2:] * 0.1
    state2, out = tracker_step(state, detections(t, z), still_ego(t), t, IMM_CFG)
    assert state2.mode_prob.shape == (4, 2) and np.isfinite(out.states).all()
    state3, _ = tracker_step(state2, detections(t + STEP_NS, z), still_ego(t + STEP_NS), t + STEP_NS, CV_CFG)
    assert state3.mode_prob.shape == (4, 0)


def test_imm_through_camera_and_radar_updates():
    rng = np.random.default_rng(8)
    cfg = TrackerConfig(motion_model="imm", sources={"lidar": SourceModel(0.3, 0.4, 3.1416, 500.0),
                                                     "radar": SourceModel(0.5, 0.3, 3.1416, 500.0),
                                                     "camera": SourceModel(1.0, 1.0, 3.1416, 500.0)})
    radar = RadarModel(mount_x_m=3.7, near_face_fraction=0.0, extent_bearing_fraction=0.0)
    camera = CameraModel(fx_px=800.0, cx_px=640.0, mount_x_m=1.5, near_face_fraction=0.0)
    pos = np.array([[30.0, 4.0], [55.0, -6.0], [80.0, 1.0]])
    vel = np.array([[2.0, -0.5], [-1.0, 0.3], [0.5, 0.0]])
    state, _ = tracker_step(TrackerState.empty(), detections(0, pos), still_ego(0), 0, cfg)
    for k in range(1, 31):
        t = k * STEP_NS
        truth = pos + vel * t * 1e-9
        if k % 2:
            los = truth - [radar.mount_x_m, 0.0]
            los /= np.linalg.norm(los, axis=1, keepdims=True)
            radial = (np.einsum("ij,ij->i", vel, los) + rng.normal(0, 0.2, 3))[:, None] * los
            d = detections(t, truth + rng.normal(0, 0.3, truth.shape), source="radar", vel=radial)
            state, out = tracker_step_radar(state, d, still_ego(t), t, cfg, radar)
        else:
            rel = truth - [camera.mount_x_m, 0.0]
            u = camera.cx_px - camera.fx_px * rel[:, 1] / rel[:, 0] + rng.normal(0, 2.0, 3)
            boxes = np.stack([u - 20, np.full(3, 300.0), u + 20, np.full(3, 360.0)], axis=1)
            rng_m = np.hypot(rel[:, 0], rel[:, 1]) + rng.normal(0, 0.8, 3)
            d = Detections2D(t, "camera", boxes.astype(np.float32), np.zeros(3, np.int16),
                             np.full(3, 0.9, np.float32), rng_m.astype(np.float32), np.full(3, 0.8, np.float32))
            state, out = tracker_step_camera(state, d, still_ego(t), t, cfg, camera)
    assert state.ids.tolist() == [1, 2, 3]
    assert np.isfinite(state.xm).all() and np.isfinite(state.pm).all()
    np.testing.assert_allclose(state.mode_prob.sum(axis=1), 1.0, atol=1e-12)
    assert np.abs(state.x[:, :2] - truth).max() < 1.5
    assert np.abs(state.x[:, 2:] - vel).max() < 1.0
    assert out.states.shape == (3, 4) and out.covariances.shape == (3, 4, 4)
