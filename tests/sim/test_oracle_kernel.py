"""The oracle's compiled detection kernel (sim/oracle.py ``_detect``) against the numpy
oracle_objects it replaced, kept here as the reference: the same random draws and the same
operations in the same order, so the detections must be equal to the bit (core/jit.py)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.geometry import map_to_se2, wrap_angle
from core.messages import Detections3D
from sim.normal_draws import NormalDraws
from sim.oracle import SOURCE, EgoNoise, oracle_ego, oracle_objects
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


def test_labels_of_another_integer_type_become_int16_and_short_columns_are_refused():
    rng = np.random.default_rng(5)
    ego, actors = random_scene(rng, 6, read_only=False)
    wide = dataclasses.replace(actors, labels=actors.labels.astype(np.int64))
    cfg = OracleConfig()
    got = oracle_objects(ego, wide, np.random.default_rng(3), cfg)
    assert same_detections(got, oracle_objects(ego, actors, np.random.default_rng(3), cfg))
    assert got.labels.dtype == np.int16
    with pytest.raises(ValueError, match="inconsistent lengths"):
        oracle_objects(ego, dataclasses.replace(actors, labels=actors.labels[:-1]), np.random.default_rng(3), cfg)


# --- reference: the Python-float oracle_ego --------------------------------------------------------------
def reference_oracle_ego(ego: EgoTruth, rng: np.random.Generator, sigmas: tuple[float, ...]) -> tuple:
    """The former oracle_ego's arithmetic: (pose, speed, accel, yaw rate), or None where it raised."""
    x, y, yaw = ego.pose.tolist()
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(yaw) and math.isfinite(ego.speed_mps)):
        return None
    z_x, z_y, z_yaw, z_v, z_w, z_a = rng.normal(0.0, 1.0, 6).tolist()
    s_x, s_y, s_yaw, s_v, s_w, s_a = sigmas
    n_x, n_y, n_yaw, n_v, n_w, n_a = z_x * s_x, z_y * s_y, z_yaw * s_yaw, z_v * s_v, z_w * s_w, z_a * s_a
    yaw_noisy = (yaw + n_yaw + math.pi) % (2.0 * math.pi) - math.pi
    return (np.array([x + n_x, y + n_y, yaw_noisy]), max(ego.speed_mps + n_v, 0.0), ego.accel_mps2 + n_a,
            ego.yaw_rate_rps + n_w)


@pytest.mark.parametrize("read_only", [False, True])
def test_oracle_ego_matches_the_python_float_reference(read_only):
    rng = np.random.default_rng(11)
    configs = [OracleConfig(), OracleConfig(ego_position_sigma_m=0.3, ego_yaw_sigma_rad=0.02, ego_speed_sigma_mps=0.4,
                                            ego_yaw_rate_sigma_rps=0.01, ego_accel_sigma_mps2=0.2),
               OracleConfig(ego_position_sigma_m=0.0, ego_yaw_sigma_rad=0.0, ego_speed_sigma_mps=0.0,
                            ego_yaw_rate_sigma_rps=0.0, ego_accel_sigma_mps2=0.0)]
    for trial in range(3000):
        pose = np.array([rng.uniform(-500.0, 500.0), rng.uniform(-500.0, 500.0),
                         rng.choice([rng.uniform(-4.0, 4.0), np.pi, -np.pi, 0.0])])
        speed = float(rng.choice([rng.uniform(0.0, 30.0), 0.0, 0.05]))
        if trial % 97 == 0:
            pose[trial % 3] = np.nan
        if trial % 89 == 0:
            speed = math.inf
        pose.flags.writeable = not read_only
        ego = EgoTruth(7 + trial, pose, pose[:2] + 1.4, speed, float(rng.uniform(-6.0, 3.0)),
                       float(rng.uniform(-0.5, 0.5)), 0.0, 4.6, 1.9, 1.5)
        cfg = configs[trial % len(configs)]
        noise = EgoNoise.from_config(cfg)
        seed = int(rng.integers(0, 2**31))
        ref = reference_oracle_ego(ego, np.random.default_rng(seed), tuple(noise.sigmas.tolist()))
        # The stream in blocks of any size (the closed loop's default, a single message's six, or a
        # block ending mid-message) gives the reference's draws.
        draws = NormalDraws(np.random.default_rng(seed), block=(768, 6, 5, 1)[trial % 4])
        if ref is None:
            with pytest.raises(ValueError, match="non-finite ego truth"):
                oracle_ego(ego, draws, noise)
            continue
        got = oracle_ego(ego, draws, noise)
        assert got.t_ns == ego.t_ns and got.covariance is noise.covariance
        assert got.pose.dtype == np.float64 and got.pose.tobytes() == ref[0].tobytes()
        for value, expected in zip((got.speed_mps, got.accel_mps2, got.yaw_rate_rps), ref[1:]):
            assert type(value) is float and np.float64(value).tobytes() == np.float64(expected).tobytes()
