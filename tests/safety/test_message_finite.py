"""The compiled finiteness check of a message against the numpy form it replaced, kept here as the
reference: every message type of the stack, float32 and float64 arrays of any shape and layout
(empty, 0-d, strided, read-only), float and numpy-float scalars, with NaN and +-inf planted
anywhere, and fields holding what their type does not declare (a float stamp, a float array where
an integer one belongs, another precision or rank): the per-type fast path must give the general
verdict for every one of them."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.messages import (ARRAY_FIELDS, CameraImage, ControlCommand, Detections2D, Detections3D, EgoState, GnssFix,
                           ImuSample, LidarScan, Mode, ModeLimits, Plan, RadarScan, SafetyStatus, Tracks, WheelSpeed)
from safety.message_finite import _CHECKERS, message_finite


# --- reference: the check before the kernel (runtime/stack.py _message_finite + safety/health.py all_finite, now safety/message_finite.py) ---
def _ref_all_finite(*values) -> bool:
    arrays = []
    for v in values:
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        else:
            arrays.append(v)
    if not arrays:
        return True
    if len(arrays) == 1:
        return bool(np.isfinite(arrays[0]).all())
    return bool(np.isfinite(np.concatenate([np.asarray(a).ravel() for a in arrays])).all())


def _ref_message_finite(msg: Any) -> bool:
    values = []
    for name in getattr(msg, "__slots__", ()):
        v = getattr(msg, name)
        if isinstance(v, float) or (isinstance(v, np.ndarray) and v.dtype.kind == "f"):
            values.append(v)
    return _ref_all_finite(*values)


BAD = (math.nan, math.inf, -math.inf)


def _array(rng: np.random.Generator, shape: tuple[int, ...], dtype, p_bad: float) -> np.ndarray:
    a = rng.normal(0.0, 10.0 ** rng.integers(-3, 30), shape).astype(dtype)
    if a.size and rng.random() < p_bad:
        a.flat[int(rng.integers(a.size))] = BAD[int(rng.integers(3))]
    if a.ndim == 2 and a.shape[0] > 1 and rng.random() < 0.3:
        a = a[::-1]  # a strided view
    if rng.random() < 0.3:
        a.flags.writeable = False  # world truth reaches messages as read-only views
    return a


def _scalar(rng: np.random.Generator, p_bad: float) -> float:
    v = BAD[int(rng.integers(3))] if rng.random() < p_bad else float(rng.normal(0.0, 100.0))
    return np.float64(v) if rng.random() < 0.3 else v


def _messages(rng: np.random.Generator, p_bad: float):
    n = int(rng.choice([0, 1, 3, 20]))
    f = lambda shape, dtype=np.float64: _array(rng, shape, dtype, p_bad)  # noqa: E731
    yield EgoState(1, f((3,)), _scalar(rng, p_bad), _scalar(rng, p_bad), _scalar(rng, p_bad), f((5, 5)))
    yield Tracks(1, np.arange(n), f((n, 4)), f((n, 4, 4)), f((n,)), f((n, 3)), np.zeros(n, np.int16), f((n,)))
    yield Plan(1, f((n,)), f((n, 2)), f((n,)), f((n,)), f((n,)), f((n,)))
    yield Detections3D(1, "oracle", f((n, 7), np.float32), f((n, 2), np.float32), np.ones(n, bool),
                       np.zeros(n, np.int16), f((n,), np.float32))
    yield ControlCommand(1, _scalar(rng, p_bad), _scalar(rng, p_bad), -1)
    yield SafetyStatus(1, Mode.NOMINAL, "", ModeLimits(), {"oracle": True})
    yield LidarScan(1, "lidar", f((n, 3), np.float32), f((n,), np.float32), np.zeros(n, np.int32))
    yield RadarScan(1, "radar", *(f((n,), np.float32) for _ in range(4)))
    yield ImuSample(1, f((3,)), _scalar(rng, p_bad))
    yield WheelSpeed(1, _scalar(rng, p_bad))
    yield GnssFix(1, f((2,)), _scalar(rng, p_bad))
    yield Detections2D(1, "camera", f((n, 4), np.float32), np.zeros(n, np.int16), f((n,), np.float32),
                       f((n,), np.float32), f((n,), np.float32))
    yield CameraImage(1, "camera", np.zeros((4, 6, 3), np.uint8))


def _odd(rng: np.random.Generator, msg: Any) -> Any:
    """``msg`` with one field holding what its type does not declare."""
    name = msg.__slots__[int(rng.integers(len(msg.__slots__)))]
    value = getattr(msg, name)
    bad = BAD[int(rng.integers(3))] if rng.random() < 0.5 else 1.0
    if isinstance(value, np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):  # casting large or non-finite values
            choices = [value.astype(np.float16), value.astype(np.int64),
                       value.reshape(value.shape + (1,) * (4 - value.ndim)), np.full(value.shape, bad),
                       np.full(value.shape, bad, np.float32), value.astype(np.complex128)]
    else:
        choices = [bad, np.float64(bad), np.full((2,), bad), np.float32(bad), int(rng.integers(5)), None]
    odd = choices[int(rng.integers(len(choices)))]
    return type(msg)(**{**{k: getattr(msg, k) for k in msg.__slots__}, name: odd})


def test_equals_reference_on_random_messages():
    rng = np.random.default_rng(11)
    seen = {True: 0, False: 0}
    for p_bad in (0.0, 0.05, 0.3, 1.0):
        for _ in range(300):
            for msg in _messages(rng, p_bad):
                expected = _ref_message_finite(msg)
                assert message_finite(msg) == expected, msg
                seen[expected] += 1
    assert min(seen.values()) > 1000


def test_fields_of_undeclared_types_give_the_general_verdict():
    rng = np.random.default_rng(12)
    seen = {True: 0, False: 0}
    for p_bad in (0.0, 0.05):
        for _ in range(300):
            for msg in _messages(rng, p_bad):
                odd = _odd(rng, msg)
                expected = _ref_message_finite(odd)
                assert message_finite(odd) == expected, odd
                seen[expected] += 1
    assert min(seen.values()) > 500


def test_every_message_type_has_a_fast_path():
    # ARRAY_FIELDS declares every array field of those types; a message as declared takes its checker.
    for cls in (LidarScan, RadarScan, ImuSample, GnssFix, Detections3D, Detections2D, EgoState, Tracks, Plan):
        assert cls in _CHECKERS and set(ARRAY_FIELDS[cls]) <= set(cls.__slots__)
    for cls in (CameraImage, ControlCommand, SafetyStatus, WheelSpeed, ModeLimits):
        assert cls in _CHECKERS  # scalars (and non-float arrays) only: tested in line, no compiled call


def test_every_position_of_a_bad_value_is_found():
    for dtype in (np.float32, np.float64):
        for bad in BAD:
            for i in range(4 * 4 * 4):
                cov = np.zeros((4, 4, 4), dtype)
                cov.flat[i] = bad
                msg = Tracks(1, np.arange(4), np.zeros((4, 4)), cov, np.zeros(4), np.zeros((4, 3)),
                             np.zeros(4, np.int16), np.ones(4))
                assert msg.covariances.dtype == dtype  # the float32 case must reach the checker as float32
                assert not message_finite(msg) and not _ref_message_finite(msg)


def test_zero_dim_arrays_and_objects_without_slots():
    assert message_finite(EgoState(1, np.array(np.nan), 0.0, 0.0, 0.0, np.eye(5))) is False
    assert message_finite(EgoState(1, np.array(1.0), 0.0, 0.0, 0.0, np.eye(5))) is True
    assert message_finite(object()) is True
