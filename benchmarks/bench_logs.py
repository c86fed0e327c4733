"""MCAP logging benchmarks: recording throughput of a lidar- and camera-heavy second of driving.

``record_throughput`` records one second at 10 Hz: ten 100k-point lidar scans, ten 640x480 camera
images and the stage outputs of each cycle (ego, detections, tracks, plan, control, safety, timing).
Throughput (``mb_per_s``) counts the serialized message payloads handed to the recorder, i.e. what
the stack produced, not the compressed file size (reported apart, with the compression ratio).
"""
from __future__ import annotations

import os
import tempfile
import weakref

import numpy as np

from core.messages import (CameraImage, ControlCommand, Detections3D, EgoState, LidarScan, Mode, ModeLimits,
                           Plan, SafetyStatus, StageTiming, Tracks)
from runtime.logs import Recorder, default_topic, run_metadata
from runtime.logs.recorder import DEFAULT_ZSTD_LEVEL

CYCLES = 10
PERIOD_NS = 100_000_000
BEAMS, AZIMUTHS = 64, 1563  # ~100k points per sweep, like a 64-beam spinning lidar at 10 Hz


def _lidar(rng: np.random.Generator, t_ns: int) -> LidarScan:
    elevation = np.deg2rad(np.linspace(-25.0, 3.0, BEAMS))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, AZIMUTHS, endpoint=False)[None, :]
    # Ground returns for the down-looking beams, a noisy 40 m "wall" for the rest: structured like a
    # real sweep (smooth within a ring) so compression sees realistic data, not white noise.
    ground_m = np.where(elevation < -0.02, 1.9 / np.tan(-np.minimum(elevation, -0.02)), 40.0)
    range_m = np.minimum(ground_m, 80.0) + rng.normal(0.0, 0.02, (BEAMS, AZIMUTHS))
    xyz = np.stack([range_m * np.cos(elevation) * np.cos(azimuth), range_m * np.cos(elevation) * np.sin(azimuth),
                    range_m * np.sin(elevation) + 1.9], axis=-1).reshape(-1, 3).astype(np.float32)
    intensity = rng.random(xyz.shape[0]).astype(np.float32)
    offsets = np.repeat(np.linspace(0, PERIOD_NS, AZIMUTHS, endpoint=False).astype(np.int32)[None, :], BEAMS, 0)
    return LidarScan(t_ns, "top", xyz, intensity, offsets.ravel())


def _image(rng: np.random.Generator, t_ns: int) -> CameraImage:
    image = np.empty((480, 640, 3), np.uint8)
    image[:240] = np.linspace(230, 150, 240, dtype=np.uint8)[:, None, None]  # sky gradient
    image[240:] = 90  # road
    x0 = int(rng.integers(100, 500))
    image[260:330, x0:x0 + 90] = (40, 40, 200)  # a car
    image += rng.integers(0, 3, image.shape, dtype=np.uint8)  # sensor noise
    return CameraImage(t_ns, "front", image)


def _cycle_outputs(rng: np.random.Generator, t_ns: int) -> list[object]:
    n, k = 20, 50
    boxes = rng.normal(size=(n, 7)).astype(np.float32)
    return [
        EgoState(t_ns, rng.normal(size=3), 12.0, 0.1, 0.0, np.eye(5)),
        Detections3D(t_ns, "lidar", boxes, rng.normal(size=(n, 2)).astype(np.float32), np.ones(n, bool),
                     np.zeros(n, np.int16), rng.random(n).astype(np.float32)),
        Tracks(t_ns, np.arange(n, dtype=np.int64), rng.normal(size=(n, 4)), np.tile(np.eye(4), (n, 1, 1)),
               rng.normal(size=n), np.full((n, 3), 2.0), np.zeros(n, np.int16), rng.random(n)),
        Plan(t_ns, np.linspace(0, 5, k), rng.normal(size=(k, 2)), rng.normal(size=k), rng.random(k),
             rng.normal(size=k), rng.normal(size=k), behaviour="follow"),
        ControlCommand(t_ns, 0.3, 0.01, t_ns),
        SafetyStatus(t_ns, Mode.NOMINAL, "", ModeLimits(), {"lidar/top": True, "camera/front": True}),
        StageTiming("planning", t_ns, t_ns, 600_000, 1_000_000, False),
    ]


def make_record_throughput(zstd_level: int = DEFAULT_ZSTD_LEVEL):
    rng = np.random.default_rng(0)
    batch: list[tuple[str, object, int]] = []
    for cycle in range(CYCLES):
        t_ns = cycle * PERIOD_NS
        for msg in (_lidar(rng, t_ns), _image(rng, t_ns)):
            batch.append((default_topic(msg), msg, t_ns + 30_000_000))
        batch.extend((default_topic(msg), msg, t_ns) for msg in _cycle_outputs(rng, t_ns))
    fd, path = tempfile.mkstemp(suffix=".mcap", prefix="rtdrive_bench_")
    os.close(fd)
    metadata = run_metadata("bench", 0, "[bench]\n", "")

    def record() -> None:
        with Recorder(path, metadata, zstd_level=zstd_level) as rec:
            for topic, msg, arrival_ns in batch:
                rec.write(topic, msg, arrival_ns=arrival_ns)
        record.bytes_per_call = rec.bytes_in

    record()
    file_bytes = os.path.getsize(path)
    record.extra = {"file_mb": round(file_bytes / 1e6, 2),
                    "compression_ratio": round(record.bytes_per_call / file_bytes, 2)}
    weakref.finalize(record, os.remove, path)
    return record


def make_replay_vs_sim(duration_s: float = 5.0):
    """Replay (ideal mode, the log already read) of a recorded cut-in run, against the simulation of
    that same run: the timed call is the replay with --check; ``sim_ms`` in ``extra`` is the median wall
    time of simulating the same run (without the recorder), to set against the replay's median."""
    import time

    from runtime.closed_loop import ClosedLoop, RunOptions
    from runtime.logs import read
    from runtime.record import EXTRA_TYPES, RunRecorder
    from runtime.replay import replay
    from sim.scenario import load_scenario

    fd, path = tempfile.mkstemp(suffix=".mcap", prefix="rtdrive_replay_")
    os.close(fd)
    scenario, opts = load_scenario("cut_in"), RunOptions(duration_s=duration_s)
    sim_s = []
    for i in range(3):
        loop = ClosedLoop(scenario, opts)
        t0 = time.perf_counter()
        if i == 0:
            with RunRecorder(loop, path):
                loop.run()
        else:
            loop.run()
        sim_s.append(time.perf_counter() - t0)
    contents = read(path, order="arrival", extra_types=EXTRA_TYPES)

    def run_replay() -> None:
        report = replay(contents, check=True)
        if report.divergence is not None:
            raise AssertionError(report.divergence.describe())

    sim_median_ms = float(np.median(sim_s[1:])) * 1e3  # the recorded run carries the recorder's cost
    run_replay.extra = {"sim_ms": round(sim_median_ms, 1), "log_s": duration_s}
    weakref.finalize(run_replay, os.remove, path)
    return run_replay


BENCHMARKS = {"record_throughput": make_record_throughput, "replay_vs_sim": make_replay_vs_sim}


if __name__ == "__main__":
    import time

    # The level sweep behind DEFAULT_ZSTD_LEVEL: throughput against file size.
    for level in (3, 1, -1, -5):
        fn = make_record_throughput(level)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        print(f"zstd level {level:>2}: {fn.bytes_per_call / 1e6 / np.median(runs):6.1f} MB/s "
              f"({fn.bytes_per_call / 1e6:.1f} MB per call, {fn.extra})")
