"""A frame's per-track bookkeeping for the tracks it hit, in one compiled pass (core/jit.py): box
yaw and size smoothing, class evidence and existence.

These were about twenty numpy calls on arrays of ~100 elements per frame, whose per-call overhead,
not the arithmetic, was the cost. The kernel performs, per hit track, the operations of that numpy
form in the same order, so it gives the same bits (tests/fusion/test_fusion_track_hits_kernel.py
keeps the numpy form as the reference). The logarithms of the class evidence are the caller's:
apply_frame passes numpy's; the quiet frame's kernel (fusion/quiet_frame.py) takes the C
library's ``log``, whose bits numpy's float64 log gives on this host (numpy's AVX-512 builds of
its loops may differ in the last bit; tests/fusion/test_fusion_quiet_frame.py compares them).

Inputs are read-only arrays in any layout (numba's ``A`` arrays): detection arrays are often views
of a frame's box array, and a replayed log hands out read-only ones. Outputs are fresh arrays.
"""
from __future__ import annotations

import numpy as np
from numba import types

from core.jit import kernel

_F1 = types.Array(types.float64, 1, "A", readonly=True)
_F2 = types.Array(types.float64, 2, "A", readonly=True)
_I1 = types.Array(types.int64, 1, "A", readonly=True)
_OUT = types.Tuple((types.float64[::1], types.float64[:, ::1], types.float64[:, ::1], types.float64[::1]))

HALF_PI = 0.5 * np.pi  # the numpy form's constants, evaluated as it evaluated them
TWO_PI = 2.0 * np.pi


@kernel(_OUT(_F1, _F2, _F2, _F1, _I1, _I1, _F1, _F2, types.boolean, types.float64, types.float64,
             _I1, _F1, _F1, _F1))
def hit_rows(yaw, size, class_loglik, existence, track_idx, det_idx, det_yaw, det_size, shape_valid,
             yaw_gain, size_gain, labels, log_score, log_other, scores):
    """New (yaw, size, class_loglik, existence) of N tracks after detections ``det_idx`` hit tracks
    ``track_idx`` (K pairs, each track at most once).

    - yaw (N,) [rad], size (N, 3) [m]: where ``shape_valid`` (the sensor measures boxes), a hit
      track moves by ``yaw_gain`` towards the detection's yaw, the innovation folded into
      [-pi/2, pi/2) (a box's yaw is ambiguous by pi) and the result wrapped to [-pi, pi), and by
      ``size_gain`` towards its size; unchanged otherwise.
    - class_loglik (N, L): a hit track adds the detection's class log-likelihood (``log_score`` for
      its label, ``log_other`` for every other class); then every row is normalised so that its
      maximum is 0 (NaN propagates as numpy's maximum propagates it).
    - existence (N,): a hit track's becomes 1 - (1 - e)(1 - score).
    Unhit tracks keep their values.
    """
    n, n_labels = class_loglik.shape[0], class_loglik.shape[1]
    yaw_out = np.empty(n)
    size_out = np.empty((n, 3))
    class_out = np.empty((n, n_labels))
    existence_out = np.empty(n)
    for i in range(n):
        yaw_out[i] = yaw[i]
        existence_out[i] = existence[i]
        for c in range(3):
            size_out[i, c] = size[i, c]
        for c in range(n_labels):
            class_out[i, c] = class_loglik[i, c]
    for k in range(track_idx.shape[0]):
        j, d = track_idx[k], det_idx[k]
        if shape_valid:
            yaw_t = yaw[j]
            dyaw = (det_yaw[d] - yaw_t + HALF_PI) % np.pi - HALF_PI
            yaw_out[j] = (yaw_t + yaw_gain * dyaw + np.pi) % TWO_PI - np.pi
            for c in range(3):
                size_out[j, c] = size[j, c] + size_gain * (det_size[d, c] - size[j, c])
        label = labels[d]
        for c in range(n_labels):
            class_out[j, c] = class_loglik[j, c] + (log_score[d] if c == label else log_other[d])
        existence_out[j] = 1.0 - (1.0 - existence[j]) * (1.0 - scores[d])
    for i in range(n):
        row_max = class_out[i, 0]
        for c in range(1, n_labels):
            v = class_out[i, c]
            # numpy's maximum(a, b): a when a > b or a is NaN, else b (a NaN b wins too, and on a
            # tie b: maximum(0.0, -0.0) is -0.0)
            if not (row_max > v or row_max != row_max):
                row_max = v
        for c in range(n_labels):
            class_out[i, c] = class_out[i, c] - row_max
    return yaw_out, size_out, class_out, existence_out
