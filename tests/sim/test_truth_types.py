"""The truth types' hand-written __init__ (sim/truth.py) against dataclass's own behaviour."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from sim.truth import ActorsTruth, EgoTruth


def _ego() -> EgoTruth:
    return EgoTruth(5, np.array([1.0, 2.0, 0.1]), np.array([2.4, 2.1]), 12.0, 0.5, 0.01, 0.02, 4.6, 1.9, 1.5)


def _actors(n: int = 3) -> ActorsTruth:
    return ActorsTruth(7, np.arange(n), np.zeros((n, 2)), np.zeros(n), np.ones(n), np.zeros(n), np.full(n, 4.5),
                       np.full(n, 1.8), np.full(n, 1.5), np.zeros(n, dtype=np.int16), np.zeros((n, 3), dtype=np.uint8))


@pytest.mark.parametrize("make", [_ego, _actors])
def test_every_field_is_set_from_its_own_argument_positionally_and_by_keyword(make):
    truth = make()
    values = {f.name: getattr(truth, f.name) for f in dataclasses.fields(truth)}
    by_keyword, positional = type(truth)(**values), type(truth)(*values.values())
    for name, value in values.items():
        assert getattr(by_keyword, name) is value and getattr(positional, name) is value


@pytest.mark.parametrize("make", [_ego, _actors])
def test_still_frozen_replaceable_and_picklable(make):
    truth = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        truth.t_ns = 1
    assert dataclasses.replace(truth, t_ns=99).t_ns == 99
    again = pickle.loads(pickle.dumps(truth))
    assert again.t_ns == truth.t_ns and type(again) is type(truth)


def test_distinct_argument_values_land_in_distinct_fields():
    ego = EgoTruth(1, "pose", "centre", 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
    assert (ego.t_ns, ego.pose, ego.center_xy_m, ego.speed_mps, ego.accel_mps2, ego.yaw_rate_rps, ego.steer_rad,
            ego.length_m, ego.width_m, ego.height_m) == (1, "pose", "centre", 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
    actors = ActorsTruth(*range(11))
    assert tuple(getattr(actors, f.name) for f in dataclasses.fields(actors)) == tuple(range(11))
