"""fast_frozen_init against the __init__ dataclasses generates: the same signature, values,
defaults, factories, __post_init__, errors and frozenness, for every record the stack decorates."""
from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest

from core import messages
from core.records import fast_frozen_init


def _pair(namespace_source: str):
    """The same class body twice: as dataclasses makes it, and with fast_frozen_init over it."""
    plain_ns, fast_ns = {"field": field, "dataclass": dataclass}, {"field": field, "dataclass": dataclass,
                                                                     "fast_frozen_init": fast_frozen_init}
    exec("@dataclass(frozen=True, slots=True)\n" + namespace_source, plain_ns)
    exec("@fast_frozen_init\n@dataclass(frozen=True, slots=True)\n" + namespace_source, fast_ns)
    return plain_ns["R"], fast_ns["R"]


BODY = '''class R:
    a: int
    b: str
    c: float = 1.5
    d: dict = field(default_factory=dict)
    e: tuple = ()
    f: int = field(init=False, default=7)
    g: list = field(init=False, default_factory=list)
    h: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "h", self.a * 2)
'''


def _values(r) -> tuple:
    return tuple(getattr(r, f.name) for f in dataclasses.fields(r))


def test_same_signature_values_and_post_init():
    plain, fast = _pair(BODY)
    assert str(inspect.signature(fast)) == str(inspect.signature(plain))
    for args, kwargs in (((1, "x"), {}), ((1, "x", 2.5), {"d": {1: 2}}), ((), {"a": 3, "b": "y", "e": (1,)}),
                         ((4, "z", 0.0, {"k": 1}, (2,)), {})):
        p, f = plain(*args, **kwargs), fast(*args, **kwargs)
        assert _values(p) == _values(f) and f.h == p.h
        assert repr(p) == repr(f)
    # A default factory gives every instance its own value, as dataclasses does.
    assert fast(1, "x").d is not fast(1, "x").d and fast(1, "x").g is not fast(1, "x").g


def test_same_errors():
    plain, fast = _pair(BODY)
    for args, kwargs in (((), {}), ((1,), {}), ((1, "x", 1.0, {}, (), 9), {}), ((1, "x"), {"f": 3}),
                         ((1, "x"), {"a": 2}), ((1, "x"), {"zz": 1})):
        with pytest.raises(TypeError) as p_err:
            plain(*args, **kwargs)
        with pytest.raises(TypeError) as f_err:
            fast(*args, **kwargs)
        assert str(p_err.value) == str(f_err.value)


def test_still_frozen_and_copyable():
    plain, fast = _pair(BODY)
    r = fast(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.a = 2
    assert dataclasses.replace(r, a=5).h == 10
    assert copy.copy(r) == r and copy.deepcopy(r) == r
    assert r == fast(1, "x") and r != fast(2, "x")


def test_refuses_what_it_does_not_support():
    with pytest.raises(TypeError):
        fast_frozen_init(dataclass(frozen=True)(type("R", (), {"__annotations__": {"a": int}})))
    with pytest.raises(TypeError):
        fast_frozen_init(dataclass(slots=True)(type("R", (), {"__annotations__": {"a": int}})))
    with pytest.raises(TypeError):
        _pair("class R:\n    a: int = field(kw_only=True, default=1)\n")


def test_every_decorated_message_keeps_its_init():
    # Each message type as dataclasses would build it, from the same field list.
    for cls in vars(messages).values():
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            continue
        rebuilt = dataclass(frozen=True, slots=True)(
            type(cls.__name__, (), {"__annotations__": {f.name: f.type for f in dataclasses.fields(cls)},
                                    **{f.name: f for f in dataclasses.fields(cls)
                                       if f.default is not dataclasses.MISSING
                                       or f.default_factory is not dataclasses.MISSING}}))
        assert str(inspect.signature(cls)) == str(inspect.signature(rebuilt)), cls
    t = messages.Tracks.empty(5)
    assert t.t_ns == 5 and t.states.shape == (0, 4) and isinstance(t.ids, np.ndarray)
    command = messages.ControlCommand(1, 0.5, -0.1, 7)
    assert pickle.loads(pickle.dumps(command)) == command and command.hazard is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.accel_mps2 = 1.0
