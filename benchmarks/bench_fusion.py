"""Fusion benchmarks: the batched tracker, its filterpy per-track counterpart, and the synchroniser.

``BENCHMARKS`` maps a name to a factory; the factory prepares inputs and returns a zero-argument
callable timed by the harness. One call of ``tracker_100x3`` is one fusion cycle: 100 targets seen
by three sources (lidar, radar, oracle), each a ``tracker_update`` of the shipped tracker (constant
velocity), then the cycle's one ``tracker_predict`` of the confirmed tracks, as the fusion pipeline
runs them; ``tracker_imm_100x3`` the same with the IMM motion model. ``tracker_filterpy_100x3`` runs
filterpy's ``KalmanFilter.predict``/``update`` per track over the same detections with the
association given: a lower bound for a per-track implementation. One call of ``sync`` is one
message through ``sync_step``. ``python -m benchmarks.bench_fusion`` prints median and p99.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter

from core.messages import Detections3D, EgoState
from fusion.sync import StreamConfig, SyncConfig, SyncState, sync_step
from fusion.tracker import tracker_predict, tracker_update
from fusion.tracker_state import TrackerConfig, TrackerState

N_TARGETS = 100
SOURCES = ("lidar", "radar", "oracle")
CYCLE_NS = 100_000_000
N_CYCLES = 400


def _scenario(seed: int = 0):
    """Per cycle, three detection frames (one per source, 20 ms apart) and the ego state."""
    rng = np.random.default_rng(seed)
    i = np.arange(N_TARGETS)
    # Ten lanes 12 m apart with ten cars each, 15 m apart; every lane moves at its own speed, so
    # cars never drive through one another (which would merge tracks and make the benchmark time
    # track churn instead of steady-state tracking).
    pos0 = np.stack([(i % 10) * 15.0 - 70.0, (i // 10) * 12.0 - 50.0], axis=1)
    lane_speed_mps = rng.uniform(-2.0, 2.0, 10)
    vel = np.stack([lane_speed_mps[i // 10], np.zeros(N_TARGETS)], axis=1)
    frames = []
    for c in range(N_CYCLES):
        cycle = []
        for s, source in enumerate(SOURCES):
            t = c * CYCLE_NS + s * 20_000_000
            ego = EgoState(t, np.array([5.0 * t * 1e-9, 0.0, 0.0]), 5.0, 0.0, 0.0, np.eye(5) * 1e-4)
            rel = pos0 + vel * t * 1e-9 - ego.pose[:2] + rng.normal(0, 0.2, (N_TARGETS, 2))
            boxes = np.zeros((N_TARGETS, 7), np.float32)
            boxes[:, :2] = rel
            boxes[:, 3:6] = (4.5, 1.9, 1.6)
            vel_rel = (vel + rng.normal(0, 0.3, vel.shape)).astype(np.float32)
            det = Detections3D(t, source, boxes, vel_rel, np.full(N_TARGETS, source != "lidar"),
                               np.zeros(N_TARGETS, np.int16), np.full(N_TARGETS, 0.9, np.float32))
            cycle.append((det, ego))
        frames.append(cycle)
    return frames


def make_tracker_100x3(cfg: TrackerConfig | None = None) -> Callable[[], None]:
    """The shipped tracker (the constant-velocity model); ``cfg`` another configuration."""
    cfg = cfg or TrackerConfig()
    frames = _scenario()
    warm = TrackerState.empty()
    warmup = 10  # tracks confirmed and covariances settled before timing
    for det, ego in (f for cycle in frames[:warmup] for f in cycle):
        warm = tracker_update(warm, det, ego, cfg)
    assert int(warm.confirmed.sum()) == N_TARGETS, "benchmark scenario must hold 100 confirmed tracks"
    holder = {"state": warm, "k": warmup}

    def run() -> None:
        if holder["k"] == N_CYCLES:  # wrap: restart from the warmed state, same inputs again
            holder["state"], holder["k"] = warm, warmup
        state = holder["state"]
        for det, ego in frames[holder["k"]]:
            state = tracker_update(state, det, ego, cfg)
        tracker_predict(state, state.t_ns, cfg)
        holder["state"], holder["k"] = state, holder["k"] + 1

    run.cycle = N_CYCLES - warmup  # calls per pass over the inputs (runtime/bench.py)
    return run


def make_tracker_filterpy_100x3() -> Callable[[], None]:
    cfg = TrackerConfig()
    frames = _scenario()
    q_psd = cfg.accel_psd_m2ps3
    src = {s: cfg.source(s) for s in SOURCES}

    def fresh() -> list[KalmanFilter]:
        det, ego = frames[0][0]
        kfs = []
        for j in range(N_TARGETS):
            kf = KalmanFilter(dim_x=4, dim_z=2)
            kf.x = np.r_[det.boxes[j, :2] + ego.pose[:2], 0.0, 0.0].astype(np.float64)
            kf.P = np.diag([0.1, 0.1, 100.0, 100.0])
            kfs.append(kf)
        return kfs

    holder = {"kfs": fresh(), "k": 1, "t": frames[0][0][0].t_ns}

    def run() -> None:
        if holder["k"] == N_CYCLES:
            holder["kfs"], holder["k"], holder["t"] = fresh(), 1, frames[0][0][0].t_ns
        kfs = holder["kfs"]
        for det, ego in frames[holder["k"]]:
            dt = (det.t_ns - holder["t"]) * 1e-9
            holder["t"] = det.t_ns
            f = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
            q = Q_continuous_white_noise(2, dt, q_psd, block_size=2, order_by_dim=False)
            s = src[det.source]
            with_vel = bool(det.velocity_valid[0])
            dim = 4 if with_vel else 2
            r = np.diag([s.pos_sigma_m**2] * 2 + [s.vel_sigma_mps**2] * 2)[:dim, :dim]
            h = np.eye(4)[:dim]
            z_all = np.concatenate([det.boxes[:, :2] + ego.pose[:2], det.velocities_mps], axis=1)
            for j, kf in enumerate(kfs):
                kf.predict(F=f, Q=q)
                kf.update(z_all[j, :dim].astype(np.float64), R=r, H=h)
        holder["k"] += 1

    run.reference = "tracker_100x3"  # rtdrive bench reports median_vs_tracker_100x3
    return run


def make_sync() -> Callable[[], None]:
    cfg = SyncConfig(streams={"lidar": StreamConfig(50_000_000), "camera": StreamConfig(100_000_000),
                              "radar": StreamConfig(30_000_000, -5_000_000)})
    rng = np.random.default_rng(1)
    n = 30_000
    streams = ("lidar", "camera", "radar")
    now = np.arange(n, dtype=np.int64) * 1_000_000
    lat = rng.integers(0, 40_000_000, n)
    # Prepared as the stack hands them over: one arrival per step, the step time a Python int (the
    # timed call is sync_step, not numpy scalar conversions).
    arrivals = [((streams[k % 3], EgoState(int(now[k] - lat[k]), np.zeros(3), 0.0, 0.0, 0.0, np.eye(5))),)
                for k in range(n)]
    now_ns = now.tolist()
    state, k = SyncState(), 0

    def run() -> None:
        # Closure cells, not a dict: the harness around a 4 us call should cost as little as it can.
        nonlocal state, k
        if k == n:
            state, k = SyncState(), 0
        state = sync_step(state, arrivals[k], now_ns[k], cfg)[0]
        k += 1

    run.cycle = n
    return run


BENCHMARKS: dict[str, Callable[[], Callable[[], None]]] = {
    "tracker_100x3": make_tracker_100x3,
    # The IMM motion model (TrackerConfig.motion_model = "imm"), on the same input.
    "tracker_imm_100x3": lambda: make_tracker_100x3(TrackerConfig(motion_model="imm")),
    "tracker_filterpy_100x3": make_tracker_filterpy_100x3,
    "sync": make_sync,
}


def _time(fn: Callable[[], None], n: int) -> np.ndarray:
    for _ in range(min(20, n)):
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out * 1e-6


# Timed calls per benchmark when this module runs on its own (``rtdrive bench`` has its own counts).
STANDALONE_RUNS = {"tracker_100x3": 300, "tracker_imm_100x3": 300, "tracker_filterpy_100x3": 100, "sync": 20_000}


def main() -> None:
    medians = {}
    for name, make in BENCHMARKS.items():
        ms = _time(make(), STANDALONE_RUNS[name])
        medians[name] = float(np.median(ms))
        print(f"{name:24s} median {np.median(ms):8.4f} ms   p99 {np.percentile(ms, 99):8.4f} ms")
    print(f"filterpy / batched (median): {medians['tracker_filterpy_100x3'] / medians['tracker_100x3']:.1f}x")


if __name__ == "__main__":
    main()
