"""The oracle's compiled detection kernel (sim/oracle.py ``_detect``) against the numpy
oracle_objects it replaced, kept here as the reference: the same random draws and the same
operations in the same order, so the detections must be equal to the bit (core/jit.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.geometry import map_to_se2, wrap_angle
from core.messages import Detections3D
from sim.oracle import SOURCE, oracle_objects
from sim.scenario import OracleConfig
from sim.truth import ActorsTruth, EgoTruth


# --- reference: the numpy oracle_objects -------------------------------------------------------------
def reference_oracle_objects(ego: EgoTruth, actors: ActorsTruth, rng: np.random.Generator,
                             cfg: OracleConfig) -> Detections3D:
    n = len(actors)
    if n == 0:
        return Detections3D.empty(ego.t_ns, SOURCE)
    pos_noise = rng.normal(0.0, 1.0, (n, 2)) * cfg.position_sigma_m
    vel_noise = rng.normal(0.0, 1.0, (n, 2)) * cfg.velocity_sigma_mps
    yaw_noise = rng.normal(0.0, 1.0, n) * cfg.yaw_sigma_rad
    kept = rng.random(n) >= cfg.dropout_prob
    xy = map_to_se2(ego.pose, actors.xy_m)
    visible = kept & np.isfinite(xy).all(axis=1) & (np.hypot(xy[:, 0], xy[:, 1]) <= cfg.range_m)
    c, s = np.cos(ego.pose[2]), np.sin(ego.pose[2])
    v_map = actors.velocity_mps
    v_veh = np.stack([c * v_map[:, 0] + s * v_map[:, 1], -s * v_map[:, 0] + c * v_map[:, 1]], axis=-1)
    idx = np.flatnonzero(visible)
    boxes = np.column_stack([
        xy[idx] + pos_noise[idx],
        0.5 * actors.height_m[idx],
        actors.length_m[idx], actors.width_m[idx], actors.height_m[idx],
        wrap_angle(actors.yaw_rad[idx] - ego.pose[2] + yaw_noise[idx]),
    ]).astype(np.float32)
    return Detections3D(
        t_ns=actors.t_ns, source=SOURCE, boxes=boxes.reshape(-1, 7),
        velocities_mps=(v_veh[idx] + vel_noise[idx]).astype(np.float32).reshape(-1, 2),
        velocity_valid=np.ones(idx.shape[0], dtype=bool),
        labels=actors.labels[idx].astype(np.int16), scores=np.ones(idx.shape[0], dtype=np.float32))


def same_detections(a: Detections3D, b: Detections3D) -> bool:
    fields = [f.name for f in dataclasses.fields(Detections3D)]
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
        elif x != y:
            return False
    return True


def random_scene(rng, n, read_only):
    pose = np.array([rng.uniform(-500.0, 500.0), rng.uniform(-500.0, 500.0), rng.uniform(-4.0, 4.0)])
    ego = EgoTruth(7, pose, pose[:2] + 1.4, 20.0, 0.0, 0.0, 0.0, 4.6, 1.9, 1.5)
    xy = pose[:2] + rng.uniform(-150.0, 150.0, (n, 2))
    if n > 4:
        xy[1, 0] = np.nan
        xy[2, 1] = np.inf
        xy[3] = pose[:2]  # at the ego's own origin
    yaw = rng.uniform(-7.0, 7.0, n)
    if n > 5:
        yaw[5] = pose[2] - np.pi  # the wrap's boundary
    columns = [np.arange(n, dtype=np.int64), xy, yaw, rng.uniform(0.0, 35.0, n), rng.uniform(-2.0, 1.0, n),
               rng.uniform(3.0, 12.0, n), rng.uniform(1.5, 2.6, n), rng.uniform(1.2, 3.5, n),
               rng.integers(0, 4, n).astype(np.int16), np.zeros((n, 3), np.uint8)]
    if read_only:
        for col in columns:
            col.flags.writeable = False
    return ego, ActorsTruth(7, *columns)


@pytest.mark.parametrize("n", [0, 1, 3, 8, 40, 300])
@pytest.mark.parametrize("read_only", [False, True])
def test_detect_matches_the_numpy_oracle(n, read_only):
    rng = np.random.default_rng(100 + n)
    configs = [OracleConfig(), OracleConfig(position_sigma_m=0.4, velocity_sigma_mps=0.3, yaw_sigma_rad=0.05,
                                            dropout_prob=0.3, range_m=90.0),
               OracleConfig(position_sigma_m=0.0, velocity_sigma_mps=0.0, yaw_sigma_rad=0.0, dropout_prob=1.0)]
    for trial in range(20):
        ego, actors = random_scene(rng, n, read_only)
        cfg = configs[trial % len(configs)]
        seed = int(rng.integers(0, 2**31))
        with np.errstate(invalid="ignore"):
            ref = reference_oracle_objects(ego, actors, np.random.default_rng(seed), cfg)
        got = oracle_objects(ego, actors, np.random.default_rng(seed), cfg)
        assert same_detections(got, ref)
