"""Generic payload surgery on sensor messages (frozen dataclasses): NaN injection, wrong shapes,
non-finite checks. Works field by field, so it serves every core.messages sensor type."""
from __future__ import annotations

import dataclasses

import numpy as np

_NONFINITE = np.array([np.nan, np.inf, -np.inf])
_JPEG_HEADER_BYTES = 20  # keep the SOI marker and APP0 header: the damage is in the entropy data


def _payload_fields(message) -> list[str]:
    return [f.name for f in dataclasses.fields(message) if f.name not in ("t_ns", "sensor")]


def inject_nonfinite(message, fraction: float, rng: np.random.Generator):
    """Each payload value independently becomes NaN/+inf/-inf with probability ``fraction``.

    Integer images cannot hold NaN: their hit values saturate instead (hot pixels), and JPEG bytes
    are overwritten, which breaks decoding the way a corrupted transfer would."""
    changes = {}
    for name in _payload_fields(message):
        value = getattr(message, name)
        if isinstance(value, np.ndarray) and value.size:
            hit = rng.random(value.shape) < fraction
            if not hit.any():
                continue
            out = value.copy()
            if np.issubdtype(value.dtype, np.floating):
                out[hit] = _NONFINITE[rng.integers(0, 3, int(hit.sum()))]
            else:
                out[hit] = np.iinfo(value.dtype).max
            changes[name] = out
        elif isinstance(value, float):
            if rng.random() < fraction:
                changes[name] = float(_NONFINITE[rng.integers(0, 3)])
        elif isinstance(value, bytes) and len(value) > _JPEG_HEADER_BYTES:
            arr = np.frombuffer(value, dtype=np.uint8).copy()
            body = arr[_JPEG_HEADER_BYTES:]
            body[rng.random(body.shape) < fraction] = 0xFF
            changes[name] = arr.tobytes()
    return dataclasses.replace(message, **changes) if changes else message


def corrupt_shape(message):
    """The main payload gets a wrong shape: arrays are flattened and lose their last element, JPEG
    bytes are truncated to half, a scalar becomes a 2-vector."""
    for name in _payload_fields(message):
        value = getattr(message, name)
        if isinstance(value, np.ndarray) and value.size:
            return dataclasses.replace(message, **{name: value.reshape(-1)[:-1].copy()})
        if isinstance(value, bytes) and value:
            return dataclasses.replace(message, **{name: value[: len(value) // 2]})
    for name in _payload_fields(message):
        if isinstance(getattr(message, name), float):
            return dataclasses.replace(message, **{name: np.zeros(2)})
    raise TypeError(f"{type(message).__name__} has no payload to corrupt")


def has_nonfinite(message) -> bool:
    for name in _payload_fields(message):
        value = getattr(message, name)
        if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            if not np.isfinite(value).all():
                return True
        elif isinstance(value, float) and not np.isfinite(value):
            return True
    return False


def with_payload_of(message, source):
    """``source``'s payload under ``message``'s timestamp (a frozen sensor repeating itself)."""
    return dataclasses.replace(message, **{n: getattr(source, n) for n in _payload_fields(message)})
