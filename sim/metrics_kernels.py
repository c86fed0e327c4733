"""MetricsRecorder.update's per-tick work as one compiled call (core/jit.py).

Every physics tick the recorder checks the ego's truth, folds it into the run's ego tallies (steps,
speed sum, peak lateral acceleration and jerk) and copies the tick's ego row and actor columns into
the open block. In Python that was some forty small operations (two tolist, eight isfinite, the
comparisons, three numpy row copies), about 7 us a tick; here it is one call. The operations are
the Python code's, in its order (plain IEEE float64 arithmetic, no fastmath), so the tallies and the
block hold its bits (tests/sim/test_metrics_kernel.py keeps the Python version as the reference).
"""
from __future__ import annotations

import numpy as np

from core.jit import kernel

# The float tallies (one float64 array the recorder owns): the speed sum [m/s], the largest
# |v * yaw rate| [m/s^2] and |jerk| [m/s^3], and the previous tick's acceleration [m/s^2] and speed
# [m/s] (the jerk's and its speed gate's other sample).
(TALLY_SPEED_SUM, TALLY_MAX_LAT, TALLY_MAX_JERK, TALLY_PREV_ACCEL, TALLY_PREV_SPEED) = range(5)
FLOAT_TALLIES = 5
# The integer tallies (one int64 array): ticks recorded, whether a previous tick exists (0 / 1) and
# its time [ns].
(COUNT_STEPS, COUNT_HAS_PREV, COUNT_PREV_T_NS) = range(3)
INT_TALLIES = 3
# One ego row of the block: x, y, yaw of the rear axle, the box centre x, y, length, width, speed and
# the interval since the previous tick [ns] (0 at the first), as floats.
EGO_ROW = 9
# One tick's row of the block (``block_columns``): the EGO_ROW ego values, then the N actors' xy
# (2 N, x and y alternating), yaw (N) and speed (N).
# record_tick's answers (BLOCK_MISMATCH: the block's rows do not fit the tick's actor count).
RECORDED, NON_FINITE_EGO, TIME_NOT_ADVANCING, BLOCK_MISMATCH = 0, 1, 2, 3


def block_columns(n: int) -> int:
    """The width of a block row for ``n`` actors."""
    return EGO_ROW + 4 * n


_R1, _R2 = "Array(float64, 1, 'A', readonly=True)", "Array(float64, 2, 'A', readonly=True)"


@kernel(f"int64({_R1}, {_R1}, int64, float64, float64, float64, float64, float64, {_R2}, {_R1}, {_R1}, float64,"
        " int64, float64[:, ::1], float64[::1], int64[::1])")
def record_tick(pose, centre_xy_m, t_ns, speed_mps, accel_mps2, yaw_rate_rps, length_m, width_m, actor_xy_m,
                actor_yaw_rad, actor_speed_mps, jerk_min_speed_mps, row, block, tallies, counts):
    """Check one tick's ego truth and record it: BLOCK_MISMATCH (``block`` rows are not
    block_columns(N) wide for the N actors, or ``row`` is not one of its rows), NON_FINITE_EGO (a
    non-finite pose, centre, speed, acceleration or yaw rate) or TIME_NOT_ADVANCING (``t_ns`` not
    after the previous tick's) change nothing; else (RECORDED) the tallies are updated and the ego
    row and the actors' xy, yaw and speed are written into row ``row`` of ``block`` (one array
    instead of four: a kernel argument costs about 0.2 us to pass)."""
    n = actor_yaw_rad.shape[0]
    if (block.shape[1] != EGO_ROW + 4 * n or actor_xy_m.shape[0] != n or actor_speed_mps.shape[0] != n
            or row < 0 or row >= block.shape[0]):
        return BLOCK_MISMATCH
    ego_x, ego_y, ego_yaw = pose[0], pose[1], pose[2]
    c_x, c_y = centre_xy_m[0], centre_xy_m[1]
    if not (np.isfinite(ego_x) and np.isfinite(ego_y) and np.isfinite(ego_yaw) and np.isfinite(c_x)
            and np.isfinite(c_y) and np.isfinite(speed_mps) and np.isfinite(accel_mps2)
            and np.isfinite(yaw_rate_rps)):
        return NON_FINITE_EGO
    has_prev = counts[COUNT_HAS_PREV] != 0
    t_prev = counts[COUNT_PREV_T_NS]
    if has_prev and t_ns <= t_prev:
        return TIME_NOT_ADVANCING
    counts[COUNT_STEPS] += 1
    tallies[TALLY_SPEED_SUM] += speed_mps
    lat = abs(speed_mps * yaw_rate_rps)
    if lat > tallies[TALLY_MAX_LAT]:
        tallies[TALLY_MAX_LAT] = lat
    dt_ns = 0
    if has_prev:
        a_prev, v_prev = tallies[TALLY_PREV_ACCEL], tallies[TALLY_PREV_SPEED]
        if min(v_prev, speed_mps) > jerk_min_speed_mps:
            jerk = abs((accel_mps2 - a_prev) / ((t_ns - t_prev) * 1e-9))
            if jerk > tallies[TALLY_MAX_JERK]:
                tallies[TALLY_MAX_JERK] = jerk
        dt_ns = t_ns - t_prev
    counts[COUNT_HAS_PREV], counts[COUNT_PREV_T_NS] = 1, t_ns
    tallies[TALLY_PREV_ACCEL], tallies[TALLY_PREV_SPEED] = accel_mps2, speed_mps
    ego_row = block[row]
    ego_row[0], ego_row[1], ego_row[2], ego_row[3], ego_row[4] = ego_x, ego_y, ego_yaw, c_x, c_y
    ego_row[5], ego_row[6], ego_row[7], ego_row[8] = length_m, width_m, speed_mps, float(dt_ns)
    xy_at, yaw_at, speed_at = EGO_ROW, EGO_ROW + 2 * n, EGO_ROW + 3 * n
    for j in range(n):
        ego_row[xy_at + 2 * j], ego_row[xy_at + 2 * j + 1] = actor_xy_m[j, 0], actor_xy_m[j, 1]
        ego_row[yaw_at + j] = actor_yaw_rad[j]
        ego_row[speed_at + j] = actor_speed_mps[j]
    return RECORDED
