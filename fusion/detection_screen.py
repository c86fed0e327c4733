"""Screening of a ``Detections3D`` frame before the tracker uses it: array shapes (a malformed
message is refused with the field named) and rows (non-finite values and unknown labels are
rejected and counted; a non-finite velocity is invalidated, keeping the position)."""
from __future__ import annotations

import math

import numpy as np

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


def valid_rows(d: Detections3D) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Rows usable as measurements, velocity validity after screening, and rejection counts."""
    vel_valid = d.velocity_valid.astype(bool)
    m = vel_valid.shape[0]
    # Clean frames are the rule: whole-array checks clear them without the per-row masks. A
    # finite total means every entry is finite (a NaN or inf carries into it; an overflowing
    # total only sends the frame to the exact screen below, which gives the same answer, as
    # it does for a NaN z, the one column the tracker does not use).
    if m and (math.isfinite(float(np.add.reduce(d.boxes, axis=None))
                            + float(np.add.reduce(d.scores, axis=None))
                            + float(np.add.reduce(d.velocities_mps, axis=None)))
              and np.minimum.reduce(d.labels) >= 0 and np.maximum.reduce(d.labels) < N_LABELS):
        return np.ones(m, bool), vel_valid, 0, 0, 0
    finite = (np.isfinite(d.boxes[:, [0, 1, 3, 4, 5, 6]]).all(axis=1) & np.isfinite(d.scores))
    label_ok = (d.labels >= 0) & (d.labels < N_LABELS)
    vel_finite = np.isfinite(d.velocities_mps).all(axis=1)
    keep = finite & label_ok
    bad_vel = keep & vel_valid & ~vel_finite
    return (keep, vel_valid & vel_finite, int((~finite).sum()), int((finite & ~label_ok).sum()),
            int(bad_vel.sum()))
