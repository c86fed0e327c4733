"""The fusion stage's per-message work in the full stack, at traffic size.

``tracker_100x3`` times the tracker at a hundred tracks; in the closed loop the fusion stage sees
a handful of cars and, in a 20 ms step, up to four ego messages (IMU 100 Hz, wheel speed 50 Hz,
GNSS 10 Hz) beside a camera, a radar and a lidar frame. Those costs are per call, not per track,
so they are timed here on the shipped rig's camera and radar models:

- ``ego_ekf_update``: one ego message through ``ego_update``, the messages of a 20 s drive in
  their real mix (10 IMU : 5 wheel : 1 GNSS);
- ``tracker_camera_8`` / ``tracker_radar_8``: one camera / radar frame of 8 cars ahead (3 lanes,
  18-48 m) through ``tracker_update_camera`` / ``tracker_update_radar``, the tracks confirmed by
  lidar frames first.

Each wraps to its warmed state at the end of its input, so every call does steady-state work.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from core.messages import Detections2D, Detections3D, EgoState, GnssFix, ImuSample, WheelSpeed
from fusion.ego_ekf import EgoConfig, EgoFilterState, ego_update
from fusion.tracker import tracker_update
from fusion.tracker_polar import tracker_update_camera, tracker_update_radar
from fusion.tracker_state import TrackerConfig, TrackerState
from runtime.closed_loop import fusion_camera_model, fusion_radar_model
from sim.sensors.config import SensorRigConfig

MS = 1_000_000
N_CARS = 8
EGO_SPEED_MPS = 20.0
FRAME_PERIOD_NS = 50 * MS  # camera and radar at 20 Hz
N_FRAMES = 400
WARMUP_FRAMES = 10


def make_ego_ekf_update() -> Callable[[], None]:
    rng = np.random.default_rng(0)
    cfg = EgoConfig()
    msgs = []
    for k in range(20_000 // 10):  # 20 s, a message every 10 ms at the most
        t = k * 10 * MS
        x = EGO_SPEED_MPS * t * 1e-9
        msgs.append(ImuSample(t, np.array([rng.normal(0, 0.05), 0.0, 9.81]), rng.normal(0, 0.01)))
        if k % 2 == 1:
            msgs.append(WheelSpeed(t + 5 * MS, EGO_SPEED_MPS + rng.normal(0, 0.1)))
        if k % 10 == 7:
            msgs.append(GnssFix(t + 7 * MS, np.array([x, 0.0]) + rng.normal(0, 1.0, 2), 1.0))
    start = EgoFilterState.at(0, np.zeros(3), EGO_SPEED_MPS, (0.5, 0.5, 0.05), 0.5)
    state, k = start, 0

    def run() -> None:
        nonlocal state, k
        if k == len(msgs):
            state, k = start, 0
        state = ego_update(state, msgs[k], cfg)
        k += 1

    run.cycle = len(msgs)  # calls per pass over the inputs (runtime/bench.py)
    return run


def _cars() -> tuple[np.ndarray, np.ndarray]:
    """Initial positions (N_CARS, 2) [m] in the ego's start frame and speeds (N_CARS,) [m/s]."""
    lane = np.arange(N_CARS) % 3 - 1
    ahead = 18.0 + 30.0 * np.arange(N_CARS) / (N_CARS - 1)  # the camera, lidar and radar see all
    return np.stack([ahead, 3.5 * lane], axis=1), EGO_SPEED_MPS + 0.1 * lane


def _ego(t_ns: int) -> EgoState:
    cov = np.zeros((5, 5))
    cov[:3, :3] = np.diag([0.04, 0.04, 1e-5])
    return EgoState(t_ns, np.array([EGO_SPEED_MPS * t_ns * 1e-9, 0.0, 0.0]), EGO_SPEED_MPS, 0.0, 0.0, cov)


def _relative(t_ns: int) -> np.ndarray:
    """Car centres (N_CARS, 2) [m] in the vehicle frame at t_ns (ego and cars on straight lanes)."""
    pos0, speed = _cars()
    return pos0 + np.stack([(speed - EGO_SPEED_MPS) * t_ns * 1e-9, np.zeros(N_CARS)], axis=1)


def _lidar(t_ns: int, rng: np.random.Generator) -> Detections3D:
    boxes = np.zeros((N_CARS, 7), np.float32)
    boxes[:, :2] = _relative(t_ns) + rng.normal(0, 0.1, (N_CARS, 2))
    boxes[:, 3:6] = (4.5, 1.9, 1.6)
    return Detections3D(t_ns, "lidar", boxes, np.zeros((N_CARS, 2), np.float32), np.zeros(N_CARS, bool),
                        np.zeros(N_CARS, np.int16), np.full(N_CARS, 0.9, np.float32))


def _camera(t_ns: int, rng: np.random.Generator, rig: SensorRigConfig) -> Detections2D:
    cam = fusion_camera_model(rig)
    d = _relative(t_ns) - (cam.mount_x_m, cam.mount_y_m)
    u = cam.cx_px - cam.fx_px * d[:, 1] / d[:, 0] + rng.normal(0, 2.0, N_CARS)
    # The ground-plane range meets the near face: a car straight ahead shows its rear, 2.25 m short.
    range_m = np.hypot(d[:, 0], d[:, 1]) - cam.near_face_fraction * 2.25 + rng.normal(0, 0.5, N_CARS)
    boxes = np.stack([u - 30.0, np.full(N_CARS, 300.0), u + 30.0, np.full(N_CARS, 360.0)], axis=1)
    return Detections2D(t_ns, "camera", boxes.astype(np.float32), np.zeros(N_CARS, np.int16),
                        np.full(N_CARS, 0.9, np.float32), range_m.astype(np.float32),
                        np.full(N_CARS, 0.5, np.float32))


def _radar(t_ns: int, rng: np.random.Generator, rig: SensorRigConfig) -> Detections3D:
    radar = fusion_radar_model(rig)
    rel = _relative(t_ns)
    los = rel - (radar.mount_x_m, radar.mount_y_m)
    los /= np.linalg.norm(los, axis=1, keepdims=True)
    centre = rel - radar.near_face_fraction * 2.25 * los + rng.normal(0, 0.3, (N_CARS, 2))
    _, speed = _cars()
    # Ground-relative (radar clustering removes the ego's own motion), along the line of sight.
    radial = (speed * los[:, 0] + rng.normal(0, 0.2, N_CARS))[:, None] * los
    boxes = np.zeros((N_CARS, 7), np.float32)
    boxes[:, :2] = centre
    boxes[:, 3:6] = (1.0, 1.0, 1.0)  # a cluster's extent, not the car's
    # velocity_valid False: the radial velocity is a range rate along the line of sight.
    return Detections3D(t_ns, "radar", boxes, radial.astype(np.float32), np.zeros(N_CARS, bool),
                        np.zeros(N_CARS, np.int16), np.full(N_CARS, 0.8, np.float32))


def _make_polar(sensor: str) -> Callable[[], None]:
    cfg, rig = TrackerConfig(), SensorRigConfig()
    rng = np.random.default_rng(1)
    warm = TrackerState.empty()
    for f in range(WARMUP_FRAMES):  # lidar frames confirm the cars' tracks
        t = f * FRAME_PERIOD_NS
        warm = tracker_update(warm, _lidar(t, rng), _ego(t), cfg)
    times = [(WARMUP_FRAMES + f) * FRAME_PERIOD_NS for f in range(N_FRAMES)]
    egos = [_ego(t) for t in times]
    if sensor == "camera":
        camera = fusion_camera_model(rig)
        frames = [_camera(t, rng, rig) for t in times]

        def apply(state: TrackerState, k: int) -> TrackerState:
            return tracker_update_camera(state, frames[k], egos[k], cfg, camera)
    else:
        radar = fusion_radar_model(rig)
        frames = [_radar(t, rng, rig) for t in times]

        def apply(state: TrackerState, k: int) -> TrackerState:
            return tracker_update_radar(state, frames[k], egos[k], cfg, radar)
    state = warm
    for k in range(N_FRAMES):  # the input must keep the tracks (steady state, no churn)
        state = apply(state, k)
    if len(state) != N_CARS or not state.confirmed.all():
        raise RuntimeError(f"tracker_{sensor}_{N_CARS}: {len(state)} tracks after its input, expected "
                           f"{N_CARS} confirmed: the benchmark would time track churn")
    state, k = warm, 0

    def run() -> None:
        nonlocal state, k
        if k == N_FRAMES:
            state, k = warm, 0
        state = apply(state, k)
        k += 1

    run.cycle = N_FRAMES
    return run


BENCHMARKS: dict[str, Callable[[], Callable[[], None]]] = {
    "ego_ekf_update": make_ego_ekf_update,
    "tracker_camera_8": lambda: _make_polar("camera"),
    "tracker_radar_8": lambda: _make_polar("radar"),
}
