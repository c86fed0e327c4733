"""fusion/slot_builder.py: a built object is the one the dataclass's own __init__ makes, field for
field; classes whose __init__ does more than set fields are refused."""
from dataclasses import dataclass, field, fields

import pytest

from core.messages import EgoState, Tracks
from fusion.pipeline import FusionOutput, FusionState
from fusion.slot_builder import slot_builder
from fusion.tracker_state import TrackerCounters, TrackerState, build_tracker_state


@pytest.mark.parametrize("cls", [EgoState, Tracks, FusionState, FusionOutput, TrackerState, TrackerCounters])
def test_built_objects_equal_constructed_ones(cls):
    values = [object() for _ in fields(cls)]
    built, made = slot_builder(cls)(*values), cls(*values)
    assert type(built) is cls
    assert all(getattr(built, f.name) is getattr(made, f.name) for f in fields(cls))
    with pytest.raises(AttributeError):  # frozen as ever
        built.__setattr__(fields(cls)[0].name, 1)


def test_tracker_state_builder_takes_the_fields_in_order():
    s = TrackerState.empty()
    built = build_tracker_state(*(getattr(s, f.name) for f in fields(TrackerState)))
    assert all(getattr(built, f.name) is getattr(s, f.name) for f in fields(TrackerState))


@dataclass(frozen=True, slots=True)
class _Checked:
    a: int

    def __post_init__(self):
        if self.a < 0:
            raise ValueError("negative")


@dataclass(slots=True)
class _Mutable:
    a: int


@dataclass(frozen=True, slots=True)
class _NotInInit:
    a: int
    b: int = field(init=False, default=0)


@dataclass(frozen=True)
class _NoSlots:
    a: int


@pytest.mark.parametrize("cls", [_Checked, _Mutable, _NotInInit, _NoSlots, int])
def test_classes_with_more_than_fields_are_refused(cls):
    with pytest.raises(TypeError):
        slot_builder(cls)
