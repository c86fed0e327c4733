import dataclasses

import numpy as np
import pytest

from core.messages import Detections3D, EgoState
from sim.normal_draws import NormalDraws
from sim.oracle import EgoNoise, oracle_ego, oracle_objects
from sim.scenario import OracleConfig
from sim.truth import ActorsTruth, EgoTruth

EXACT = OracleConfig(position_sigma_m=0.0, velocity_sigma_mps=0.0, yaw_sigma_rad=0.0)


def ego(yaw=np.pi / 2):
    return EgoTruth(5, np.array([10.0, 20.0, yaw]), np.array([10.0, 21.4]), 12.0, 0.5, 0.01, 0.0, 4.6, 1.9, 1.5)


def actors(xy, yaw=np.pi / 2, speed=8.0):
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = xy.shape[0]
    return ActorsTruth(5, np.arange(n), xy, np.full(n, yaw), np.full(n, speed), np.zeros(n), np.full(n, 4.0),
                       np.full(n, 1.8), np.full(n, 1.6), np.ones(n, np.int16), np.zeros((n, 3), np.uint8))


def test_exact_oracle_gives_vehicle_frame_boxes_and_velocities():
    # Ego faces north; an actor 30 m north and 2 m west is 30 m ahead and 2 m left.
    det = oracle_objects(ego(), actors([[8.0, 50.0]]), np.random.default_rng(0), EXACT)
    assert isinstance(det, Detections3D) and det.source == "oracle" and det.t_ns == 5
    np.testing.assert_allclose(det.boxes[0], [30.0, 2.0, 0.8, 4.0, 1.8, 1.6, 0.0], atol=1e-5)
    np.testing.assert_allclose(det.velocities_mps[0], [8.0, 0.0], atol=1e-5)
    assert det.velocity_valid.all() and det.labels.tolist() == [1] and det.boxes.dtype == np.float32


def test_range_gating_and_dropout():
    det = oracle_objects(ego(), actors([[10.0, 100.0], [10.0, 500.0]]), np.random.default_rng(0), EXACT)
    assert len(det) == 1
    gone = oracle_objects(ego(), actors([[10.0, 100.0]] * 50), np.random.default_rng(0),
                          dataclasses.replace(EXACT, dropout_prob=1.0))
    assert len(gone) == 0 and gone.boxes.shape == (0, 7)
    some = oracle_objects(ego(), actors([[10.0, 100.0]] * 400), np.random.default_rng(0),
                          dataclasses.replace(EXACT, dropout_prob=0.5))
    assert 150 < len(some) < 250


def test_noise_statistics_and_determinism():
    cfg = OracleConfig(position_sigma_m=0.5, velocity_sigma_mps=0.2)
    many = actors([[10.0, 60.0]] * 4000)
    a = oracle_objects(ego(), many, np.random.default_rng(1), cfg)
    b = oracle_objects(ego(), many, np.random.default_rng(1), cfg)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.velocities_mps, b.velocities_mps)
    assert np.std(a.boxes[:, 0]) == pytest.approx(0.5, rel=0.1)
    assert np.std(a.velocities_mps[:, 1]) == pytest.approx(0.2, rel=0.1)


def test_empty_actors_and_bad_ego():
    assert len(oracle_objects(ego(), actors(np.zeros((0, 2))), np.random.default_rng(0), EXACT)) == 0
    bad = dataclasses.replace(ego(), pose=np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError):
        oracle_objects(bad, actors([[0.0, 1.0]]), np.random.default_rng(0), EXACT)
    with pytest.raises(ValueError):
        oracle_ego(bad, NormalDraws(np.random.default_rng(0)), EgoNoise.from_config(EXACT))


def test_oracle_ego_noise_matches_covariance():
    cfg = OracleConfig(ego_position_sigma_m=0.3, ego_yaw_sigma_rad=0.02, ego_speed_sigma_mps=0.1)
    draws = NormalDraws(np.random.default_rng(2))
    noise = EgoNoise.from_config(cfg)
    states = [oracle_ego(ego(), draws, noise) for _ in range(3000)]
    assert isinstance(states[0], EgoState) and states[0].t_ns == 5
    poses = np.array([s.pose for s in states])
    np.testing.assert_allclose(np.std(poses, axis=0), [0.3, 0.3, 0.02], rtol=0.1)
    np.testing.assert_allclose(np.diag(states[0].covariance)[:4], [0.09, 0.09, 0.0004, 0.01])
    assert np.std([s.speed_mps for s in states]) == pytest.approx(0.1, rel=0.1)
