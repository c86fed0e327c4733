"""Screening of a ``Detections3D`` frame before the tracker uses it: array shapes (a malformed
message is refused with the field named) and rows (non-finite values and unknown labels are
rejected and counted; a non-finite velocity is invalidated, keeping the position)."""
from __future__ import annotations

import math

import numpy as np
from numba import types

from core.jit import kernel
from core.messages import Detections3D
from fusion.tracker_state import N_LABELS


def check_shapes(d: Detections3D) -> None:
    """Raise ValueError naming the field whose shape does not fit (N, 7) boxes."""
    m = d.boxes.shape[0] if d.boxes.ndim == 2 else -1
    # One comparison clears a well-formed message; the loop below names what is wrong.
    if m >= 0 and ((d.boxes.shape, d.velocities_mps.shape, d.velocity_valid.shape, d.labels.shape,
                    d.scores.shape) == ((m, 7), (m, 2), (m,), (m,), (m,))):
        return
    expected = {"boxes": (m, 7), "velocities_mps": (m, 2), "velocity_valid": (m,),
                "labels": (m,), "scores": (m,)}
    for name, shape in expected.items():
        got = getattr(d, name).shape
        if m < 0 or got != shape:
            raise ValueError(f"Detections3D.{name} from {d.source!r}: shape {got}, expected {shape} "
                             f"(boxes must be (N, 7))")


def _readonly(dtype, ndim):
    return types.Array(dtype, ndim, "A", readonly=True)


@kernel(types.boolean(_readonly(types.float32, 2), _readonly(types.float32, 2), _readonly(types.float32, 1),
                      _readonly(types.int16, 1), types.int64))
def _all_clean(boxes, velocities, scores, labels, n_labels):
    """Whether every entry of ``boxes`` (all seven columns), ``velocities`` and ``scores`` is
    finite and every label in [0, n_labels): the clean frame, in one compiled pass over a
    message's own (float32, int16) arrays."""
    for i in range(boxes.shape[0]):
        for c in range(boxes.shape[1]):
            if not math.isfinite(boxes[i, c]):
                return False
        for c in range(velocities.shape[1]):
            if not math.isfinite(velocities[i, c]):
                return False
        if not math.isfinite(scores[i]) or labels[i] < 0 or labels[i] >= n_labels:
            return False
    return True


def _clean(d: Detections3D) -> bool:
    """Whether every row of a (shape-checked, non-empty) frame is usable as it is, velocity
    included: every box entry, score and velocity finite, every label known."""
    if (d.boxes.dtype == np.float32 and d.velocities_mps.dtype == np.float32 and d.scores.dtype == np.float32
            and d.labels.dtype == np.int16):
        # The message types' own dtypes: one compiled pass.
        return _all_clean(d.boxes, d.velocities_mps, d.scores, d.labels, N_LABELS)
    # Other dtypes: whole-array checks. A finite total means every entry is finite (a NaN or inf
    # carries into it; an overflowing total only sends the frame to the exact screen, which gives
    # the same answer, as it does for a NaN z, the one column the tracker does not use).
    return (math.isfinite(float(np.add.reduce(d.boxes, axis=None)) + float(np.add.reduce(d.scores, axis=None))
                          + float(np.add.reduce(d.velocities_mps, axis=None)))
            and np.minimum.reduce(d.labels) >= 0 and np.maximum.reduce(d.labels) < N_LABELS)


def valid_rows(d: Detections3D) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Rows usable as measurements, velocity validity after screening, and rejection counts."""
    vel_valid = d.velocity_valid.astype(bool)
    m = vel_valid.shape[0]
    # Clean frames are the rule: one check clears them without the per-row masks below (which
    # give the same answer for a clean frame, and the exact one for the rest; a frame with a
    # non-finite z, the one column the tracker does not use, goes there too).
    if m and _clean(d):
        keep = np.empty(m, bool)
        keep.fill(True)  # np.ones' values without its Python-level wrapper (~1 us of a frame's screen)
        return keep, vel_valid, 0, 0, 0
    finite = (np.isfinite(d.boxes[:, [0, 1, 3, 4, 5, 6]]).all(axis=1) & np.isfinite(d.scores))
    label_ok = (d.labels >= 0) & (d.labels < N_LABELS)
    vel_finite = np.isfinite(d.velocities_mps).all(axis=1)
    keep = finite & label_ok
    bad_vel = keep & vel_valid & ~vel_finite
    return (keep, vel_valid & vel_finite, int((~finite).sum()), int((finite & ~label_ok).sum()),
            int(bad_vel.sum()))
