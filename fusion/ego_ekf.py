"""Ego-state EKF: IMU, wheel speed and GNSS fused into the pose of the vehicle frame in the map.

State (x, y, yaw, speed, yaw_rate, wheel_scale) in the map frame. The motion model is a unicycle
integrated at the mid-point heading, driven by the IMU's longitudinal specific force as a control
input (held between samples). Yaw rate and GNSS position are linear measurements; the wheel speed
is (1 + wheel_scale) * speed, because a worn or under-inflated tyre reads a fixed fraction off: left
out, a 0.5 % scale error at 25 m/s puts the estimate a steady ~0.3 m ahead of the car between GNSS
fixes, while GNSS position over time makes the scale observable. GNSS fixes whose normalised
innovation squared exceeds a chi-square gate are rejected and counted (multipath jumps); without
GNSS the covariance simply grows. ``EgoState`` carries the first five states and their covariance.

Beside the map pose the filter dead-reckons an odometry pose (REP 105's ``odom`` frame): the same
motion model driven by the filter's speed and yaw rate, but never moved by a GNSS fix. It drifts
slowly and never jumps, so the object tracker works in it: a GNSS correction of the map pose
(0.3 m and 0.01 rad within a tenth of a second are ordinary at a 1 m GNSS sigma) would otherwise
shift every detection placed after it and read as a lateral velocity of every track.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import math

import numpy as np

from core.config import rng
from core.messages import EgoState, GnssFix, ImuSample, WheelSpeed
from fusion import kalman
from fusion.association import gate_threshold
from fusion.ego_ekf_kernels import N_STATE, joseph_update, motion_step

EgoMessage = ImuSample | WheelSpeed | GnssFix
_H_POS = np.eye(N_STATE)[:2]
_H_YAW_RATE = np.eye(N_STATE)[4:5]


@dataclass(frozen=True, slots=True)
class EgoConfig:
    accel_sigma_mps2: float = field(default=0.5, metadata=rng(1e-4, 20.0))  # unmodelled accel
    yaw_accel_sigma_rps2: float = field(default=0.3, metadata=rng(1e-4, 20.0))
    pos_sigma_mps: float = field(default=0.05, metadata=rng(0.0, 10.0))  # lateral slip, per sqrt(s)
    yaw_sigma_rps: float = field(default=0.005, metadata=rng(0.0, 1.0))  # per sqrt(s)
    # ... at and above this speed; below it, in proportion to the speed: a car does not turn on the
    # spot. At a full rate the heading sigma of a car waiting with every sensor healthy passed the
    # monitor's 0.05 rad limit after ~95 s (GNSS says nothing of the heading at rest), and a traffic
    # jam ended in a minimal-risk stop.
    yaw_noise_full_speed_mps: float = field(default=1.0, metadata=rng(0.0, 100.0))
    wheel_speed_sigma_mps: float = field(default=0.1, metadata=rng(1e-4, 10.0))
    imu_yaw_rate_sigma_rps: float = field(default=0.01, metadata=rng(1e-5, 1.0))
    gnss_sigma_floor_m: float = field(default=0.1, metadata=rng(1e-3, 100.0))
    gnss_gate_probability: float = field(default=0.999, metadata=rng(0.5, 0.999999))
    # IMU yaw-rate and wheel-speed innovations beyond this many standard deviations of their
    # predicted spread are refused as corrupt (6 sigma: a 2e-9 event for the noise), and so is an
    # IMU sample whose acceleration exceeds max_abs_accel_mps2 (held as the control input, an
    # absurd value would run the prediction away): a finite but absurd frame (a wheel speed of
    # 1e200) otherwise overflows the filter.
    motion_gate_sigma: float = field(default=6.0, metadata=rng(3.0, 1e6))
    max_abs_accel_mps2: float = field(default=50.0, metadata=rng(1.0, 1000.0))
    # The IMU's acceleration drives the prediction only while its newest sample is at most this old;
    # past it the prediction takes no acceleration and the speed's process noise widens to
    # unknown_accel_sigma_mps2. Held instead (an IMU gone silent), the last sample's acceleration
    # was assumed known to accel_sigma_mps2 through the minimal-risk stop that followed: the speed
    # lagged the braking car by 0.7 m/s, the healthy wheel speed failed the NIS window test and was
    # quarantined, and the stopped car drove off again (lead_brake, imu:dropout@3). 0.25 s: twice
    # the largest sync window (the output is predicted that far past the newest released sample).
    accel_input_timeout_s: float = field(default=0.25, metadata=rng(0.001, 10.0))
    unknown_accel_sigma_mps2: float = field(default=4.0, metadata=rng(1e-4, 50.0))
    max_step_s: float = field(default=0.05, metadata=rng(1e-3, 1.0))  # prediction sub-step
    # Beyond max_substeps * max_step_s the sub-steps lengthen instead of multiplying: through a
    # total outage of the ego sensors every output predicts from the last measurement, and with
    # fixed 50 ms steps a 60 s gap cost ~28 ms per call, past the fusion stage's budget. An
    # estimate that old is refused as stale anyway (FusionConfig.max_ego_age_s, 0.5 s).
    max_substeps: int = field(default=20, metadata=rng(1, 100_000))
    init_yaw_sigma_rad: float = field(default=3.1416, metadata=rng(0.0, 10.0))
    init_speed_sigma_mps: float = field(default=5.0, metadata=rng(0.0, 100.0))
    init_wheel_scale_sigma: float = field(default=0.02, metadata=rng(1e-6, 0.5))  # tyre radius, 2 %
    # A filter started from a GNSS fix does not know its heading; once a later fix lies this far
    # from the first, the heading is set from the course between them (an EKF started 2+ rad off
    # never converges: its predictions run away from the fixes, and the NIS gate rejects them all).
    heading_bootstrap_m: float = field(default=10.0, metadata=rng(0.5, 1000.0))
    # Slow drift of the scale (tyre warming, pressure), per sqrt(s).
    wheel_scale_sigma_per_sqrt_s: float = field(default=1e-4, metadata=rng(0.0, 0.1))


@dataclass(frozen=True, slots=True)
class EgoCounters:
    applied: int = 0
    stale: int = 0  # older than the filter: never applied with a negative time step
    rejected_nonfinite: int = 0
    gnss_outliers: int = 0
    waiting_for_gnss: int = 0  # messages before the first fix placed the filter in the map
    covariance_repaired: int = 0
    heading_bootstraps: int = 0  # headings set from the course between two GNSS fixes
    imu_outliers: int = 0  # outside EgoConfig.motion_gate_sigma or max_abs_accel_mps2
    wheel_outliers: int = 0  # outside EgoConfig.motion_gate_sigma
    # Updates refused because their result was not finite: a finite but absurd measurement (a
    # wheel speed of 1e200 from a corrupt frame) overflows the update, and a NaN state, once kept,
    # would poison every later estimate and gate (a NaN NIS passes any threshold).
    nonfinite_updates: int = 0
    # Messages of a quarantined stream the gates would have taken: judged, not applied (ego_update).
    quarantined: int = 0

    def add(self, **deltas: int) -> "EgoCounters":
        return replace(self, **{k: getattr(self, k) + int(v) for k, v in deltas.items() if v})


@dataclass(frozen=True, slots=True)
class EgoFilterState:
    t_ns: int | None  # None until initialised (explicitly or by the first GNSS fix)
    x: np.ndarray  # (6,) x, y, yaw, speed, yaw_rate, wheel_scale
    p: np.ndarray  # (6, 6)
    accel_mps2: float  # last longitudinal specific force, held as the control input
    counters: EgoCounters = field(default_factory=EgoCounters)
    # Normalised innovation squared of the latest judged measurement (refused or not): 1 degree of
    # freedom for an IMU yaw rate or a wheel speed, 2 for a GNSS fix (``nis_dof``). The stack sums
    # it over a window per stream: a sensor gone noisy while most of its data still pass the gates
    # shows there, and nowhere else.
    last_nis: float = float("nan")
    # (x, y, yaw) of the vehicle in the odometry frame, which starts at the first map pose
    odom: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # (x, y, t_ns) of the first GNSS fix while the heading is unknown (started without a prior)
    heading_anchor: tuple[float, float, int] | None = None
    # Time of the newest applied measurement (or of the prior the filter was started with): the
    # age the fusion stage checks. ``t_ns`` moves with every prediction, also to a GNSS fix that
    # the gate then rejects, so it says nothing about whether anything was measured.
    measured_ns: int | None = None
    # Time of the IMU sample whose acceleration ``accel_mps2`` holds (or of the prior that set it);
    # None: no acceleration input (EgoConfig.accel_input_timeout_s).
    accel_ns: int | None = None

    @staticmethod
    def empty() -> "EgoFilterState":
        return EgoFilterState(None, np.zeros(N_STATE), np.eye(N_STATE), 0.0)

    @staticmethod
    def at(t_ns: int, pose: np.ndarray, speed_mps: float, pose_sigma: tuple[float, float, float],
           speed_sigma_mps: float, wheel_scale_sigma: float = 0.02) -> "EgoFilterState":
        """A filter started at a known pose (e.g. the scenario start)."""
        x = np.array([pose[0], pose[1], pose[2], speed_mps, 0.0, 0.0], dtype=np.float64)
        p = np.diag(np.square([*pose_sigma, speed_sigma_mps, 0.1, wheel_scale_sigma]))
        return EgoFilterState(int(t_ns), x, p, 0.0, odom=(float(x[0]), float(x[1]), float(x[2])),
                              measured_ns=int(t_ns), accel_ns=int(t_ns))


def _noise_rates(cfg: EgoConfig) -> np.ndarray:
    """Process noise variances per second of the six states (the sub-step's Q is these times dt)."""
    return np.array([cfg.pos_sigma_mps**2, cfg.pos_sigma_mps**2, cfg.yaw_sigma_rps**2,
                     cfg.accel_sigma_mps2**2, cfg.yaw_accel_sigma_rps2**2,
                     cfg.wheel_scale_sigma_per_sqrt_s**2])


def _predict(state: EgoFilterState, t_ns: int, cfg: EgoConfig) -> EgoFilterState:
    if state.t_ns is None or t_ns <= state.t_ns:
        return state
    remaining = (t_ns - state.t_ns) * 1e-9
    x, p = state.x, state.p
    ox, oy, oyaw = state.odom
    # Sub-steps bound the linearisation error over a long GNSS or IMU gap.
    n_steps = min(max(1, math.ceil(remaining / cfg.max_step_s)), cfg.max_substeps)
    dt = remaining / n_steps
    q_rate = _noise_rates(cfg)
    accel = state.accel_mps2
    if state.accel_ns is None or (t_ns - state.accel_ns) * 1e-9 > cfg.accel_input_timeout_s:
        accel = 0.0
        q_rate = q_rate.copy()
        q_rate[3] = max(q_rate[3], cfg.unknown_accel_sigma_mps2**2)
    full_speed = cfg.yaw_noise_full_speed_mps
    for _ in range(n_steps):
        v, w = float(x[3]), float(x[4])
        mid = oyaw + 0.5 * w * dt  # the odometry pose takes the map pose's mid-point step
        ox, oy, oyaw = ox + v * dt * math.cos(mid), oy + v * dt * math.sin(mid), math.remainder(oyaw + w * dt, math.tau)
        q = q_rate
        if abs(v) < full_speed:
            q = q_rate.copy()
            q[2] *= abs(v) / full_speed
        x, p = motion_step(x, p, accel, dt, q)
    # A constructor call, not dataclasses.replace: this runs for every ego message and output.
    return EgoFilterState(t_ns=int(t_ns), x=x, p=p, accel_mps2=state.accel_mps2, counters=state.counters,
                          last_nis=state.last_nis, odom=(ox, oy, oyaw), heading_anchor=state.heading_anchor,
                          measured_ns=state.measured_ns, accel_ns=state.accel_ns)


def _update(state: EgoFilterState, y: np.ndarray, h: np.ndarray, r: np.ndarray, nis: float) -> EgoFilterState:
    """Update with the innovation y (z - h(x)), whose NIS is ``nis``; ``h`` is the measurement
    matrix or Jacobian."""
    x, p = joseph_update(state.x, state.p, y, h, r)
    p, repaired, broken = kalman.repair_covariance(p[None])
    if broken[0] or not all(map(math.isfinite, x.tolist())):
        return replace(state, last_nis=nis, counters=state.counters.add(nonfinite_updates=1))
    x[2] = (x[2] + math.pi) % math.tau - math.pi  # core.geometry.wrap_angle, on a float
    return EgoFilterState(t_ns=state.t_ns, x=x, p=p[0], accel_mps2=state.accel_mps2,
                          counters=state.counters.add(applied=1, covariance_repaired=int(repaired[0])),
                          last_nis=nis, odom=state.odom, heading_anchor=state.heading_anchor,
                          measured_ns=state.t_ns, accel_ns=state.accel_ns)


def _init_from_gnss(msg: GnssFix, cfg: EgoConfig) -> EgoFilterState:
    sigma = max(float(msg.sigma_m), cfg.gnss_sigma_floor_m)
    x = np.array([msg.position_m[0], msg.position_m[1], 0.0, 0.0, 0.0, 0.0], dtype=np.float64)
    p = np.diag([sigma**2, sigma**2, cfg.init_yaw_sigma_rad**2, cfg.init_speed_sigma_mps**2, 0.1,
                 cfg.init_wheel_scale_sigma**2])
    return EgoFilterState(int(msg.t_ns), x, p, 0.0, EgoCounters().add(applied=1),
                          odom=(float(x[0]), float(x[1]), 0.0),
                          heading_anchor=(float(x[0]), float(x[1]), int(msg.t_ns)), measured_ns=int(msg.t_ns))


def _bootstrap_heading(state: EgoFilterState, msg: GnssFix, sigma_m: float, cfg: EgoConfig) -> EgoFilterState:
    """Once a fix lies ``heading_bootstrap_m`` from the anchor fix, re-seed the pose there with the
    heading of the course between them (advanced by half the turn over the interval: the chord
    runs along the mean heading). Its sigma is that of a chord measured with two fixes' noise.
    Returns the state unchanged (anchor kept) while the fixes are closer than that."""
    ax, ay, at_ns = state.heading_anchor
    fx, fy = float(msg.position_m[0]), float(msg.position_m[1])
    dist_m = math.hypot(fx - ax, fy - ay)
    if dist_m < cfg.heading_bootstrap_m:
        return state
    x, p = state.x.copy(), state.p.copy()
    x[0], x[1] = fx, fy
    x[2] = math.remainder(math.atan2(fy - ay, fx - ax) + 0.5 * float(x[4]) * (msg.t_ns - at_ns) * 1e-9, math.tau)
    p[:3, :] = 0.0
    p[:, :3] = 0.0
    p[0, 0] = p[1, 1] = sigma_m**2
    p[2, 2] = (2.0 * sigma_m / dist_m) ** 2
    # No innovation was judged: the fix re-seeded the pose.
    return replace(state, x=x, p=p, heading_anchor=None, measured_ns=int(msg.t_ns), last_nis=math.nan,
                   counters=state.counters.add(applied=1, heading_bootstraps=1))


def nis_dof(msg: EgoMessage) -> int:
    """Degrees of freedom of the innovation ``ego_update`` judges ``msg`` by (``last_nis``)."""
    return 2 if isinstance(msg, GnssFix) else 1


def _finite(msg: EgoMessage) -> bool:
    if isinstance(msg, ImuSample):
        return bool(np.isfinite(msg.accel_mps2).all() and np.isfinite(msg.yaw_rate_rps))
    if isinstance(msg, WheelSpeed):
        return bool(np.isfinite(msg.speed_mps))
    return bool(np.isfinite(msg.position_m).all() and np.isfinite(msg.sigma_m) and msg.sigma_m >= 0)


def ego_update(state: EgoFilterState, msg: EgoMessage, cfg: EgoConfig, apply: bool = True) -> EgoFilterState:
    """Predict to ``msg.t_ns`` and apply the measurement (or count why it was not applied).

    ``apply=False`` (a quarantined stream: the safety monitor counts it lost because the gates
    kept refusing it or its innovations exceeded its noise) runs the gates alone: a refusal is
    counted as usual, a pass is counted as ``quarantined`` and the measurement is not used. A
    quarantined IMU sample, refused or not, also leaves no acceleration input, so the last applied
    one stops driving the prediction; a quarantined GNSS fix never starts a filter (after a
    reset). A receiver gone noisy has fixes
    pass the gate now and then, more as the covariance grows without it; applied, each pulled the
    estimate metres off."""
    if not isinstance(msg, (ImuSample, WheelSpeed, GnssFix)):
        raise TypeError(f"ego_update takes ImuSample, WheelSpeed or GnssFix, not {type(msg).__name__}")
    if not _finite(msg):
        return replace(state, counters=state.counters.add(rejected_nonfinite=1))
    if state.t_ns is None:
        if isinstance(msg, GnssFix) and apply:
            return replace(_init_from_gnss(msg, cfg), counters=state.counters.add(applied=1))
        return replace(state, counters=state.counters.add(waiting_for_gnss=1))
    if msg.t_ns < state.t_ns:
        return replace(state, counters=state.counters.add(stale=1))
    state = _predict(state, int(msg.t_ns), cfg)
    gate_sq = cfg.motion_gate_sigma**2
    if isinstance(msg, ImuSample):
        y = float(msg.yaw_rate_rps) - float(state.x[4])
        r = cfg.imu_yaw_rate_sigma_rps**2
        accel = float(msg.accel_mps2[0])
        # ``not <=`` so that a NaN spread (a broken filter) refuses too.
        # Quarantined: the acceleration held from the last applied sample would otherwise drive
        # every prediction from here on; constant speed instead, the wheel speed correcting it.
        # (No acceleration input at all: the prediction's speed noise widens at once.)
        held, held_ns = (state.accel_mps2, state.accel_ns) if apply else (0.0, None)
        spread = float(state.p[4, 4]) + r
        nis = y * y / spread
        if not (y * y <= gate_sq * spread and abs(accel) <= cfg.max_abs_accel_mps2):
            return replace(state, accel_mps2=held, accel_ns=held_ns, last_nis=nis,
                           counters=state.counters.add(imu_outliers=1))
        if not apply:
            return replace(state, accel_mps2=held, accel_ns=held_ns, last_nis=nis,
                           counters=state.counters.add(quarantined=1))
        return _update(replace(state, accel_mps2=accel, accel_ns=int(msg.t_ns)), np.array([y]), _H_YAW_RATE,
                       np.array([[r]]), nis)
    if isinstance(msg, WheelSpeed):
        v, gain = float(state.x[3]), 1.0 + float(state.x[5])  # speed and wheel scale factor
        h = np.zeros((1, N_STATE))
        h[0, 3], h[0, 5] = gain, v
        y = float(msg.speed_mps) - gain * v
        r = cfg.wheel_speed_sigma_mps**2
        p = state.p  # the innovation's variance h P h^T + r, with h nonzero at speed and scale only
        spread = gain * gain * float(p[3, 3]) + 2.0 * gain * v * float(p[3, 5]) + v * v * float(p[5, 5])
        nis = y * y / (spread + r)
        if not y * y <= gate_sq * (spread + r):
            return replace(state, last_nis=nis, counters=state.counters.add(wheel_outliers=1))
        if not apply:
            return replace(state, last_nis=nis, counters=state.counters.add(quarantined=1))
        return _update(state, np.array([y]), h, np.array([[r]]), nis)
    sigma = max(float(msg.sigma_m), cfg.gnss_sigma_floor_m)
    if state.heading_anchor is not None and apply:
        seeded = _bootstrap_heading(state, msg, sigma, cfg)
        if seeded.heading_anchor is None:
            return seeded
    r = np.eye(2) * sigma**2
    y = np.asarray(msg.position_m, dtype=np.float64) - state.x[:2]
    nis = float(y @ np.linalg.solve(state.p[:2, :2] + r, y))
    if not nis <= gate_threshold(cfg.gnss_gate_probability, 2):  # a NaN NIS is no pass
        return replace(state, last_nis=nis, counters=state.counters.add(gnss_outliers=1))
    if not apply:
        return replace(state, last_nis=nis, counters=state.counters.add(quarantined=1))
    return _update(state, y, _H_POS, r, nis)


def _map_ego(s: EgoFilterState) -> EgoState:
    """The (predicted) filter as an ``EgoState`` with the map pose."""
    return EgoState(int(s.t_ns), s.x[:3].copy(), float(s.x[3]), float(s.accel_mps2), float(s.x[4]),
                    s.p[:5, :5].copy())


def _odom_ego(s: EgoFilterState) -> EgoState:
    """The (predicted) filter as an ``EgoState`` with the odometry pose. Relative to its own frame
    that pose drifts far less over a tracker's time scales than the sensors' noise, so its pose
    covariance is taken as zero (the drift is not modelled): the placement of a detection then
    carries the sensor's noise alone."""
    cov = s.p[:5, :5].copy()
    cov[:3, :] = 0.0
    cov[:, :3] = 0.0
    return EgoState(int(s.t_ns), np.array(s.odom), float(s.x[3]), float(s.accel_mps2), float(s.x[4]), cov)


def _predicted_for_output(state: EgoFilterState, t_ns: int, cfg: EgoConfig) -> EgoFilterState:
    return _predict(state, max(int(t_ns), state.t_ns), cfg)


def ego_outputs(state: EgoFilterState, t_ns: int, cfg: EgoConfig) -> tuple[EgoState, EgoState] | None:
    """The ego estimate predicted to ``t_ns`` (never backwards) with the map pose and with the
    odometry pose, from one prediction; None before initialisation."""
    if state.t_ns is None:
        return None
    s = _predicted_for_output(state, t_ns, cfg)
    return _map_ego(s), _odom_ego(s)


def ego_output(state: EgoFilterState, t_ns: int, cfg: EgoConfig) -> EgoState | None:
    """The ego estimate in the map frame predicted to ``t_ns`` (never backwards); None before
    initialisation."""
    return None if state.t_ns is None else _map_ego(_predicted_for_output(state, t_ns, cfg))


def ego_odom_output(state: EgoFilterState, t_ns: int, cfg: EgoConfig) -> EgoState | None:
    """``ego_output`` with the odometry pose in place of the map pose (see ``_odom_ego``)."""
    return None if state.t_ns is None else _odom_ego(_predicted_for_output(state, t_ns, cfg))


def ego_step(state: EgoFilterState, msg: EgoMessage, t_ns: int,
             cfg: EgoConfig) -> tuple[EgoFilterState, EgoState | None]:
    """One measurement in, the new filter and the ego state at ``t_ns`` out."""
    state = ego_update(state, msg, cfg)
    return state, ego_output(state, t_ns, cfg)
