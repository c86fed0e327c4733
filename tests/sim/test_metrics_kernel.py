"""The metrics' per-tick kernel (sim/metrics_kernels.py ``record_tick``) against the Python
MetricsRecorder.update it replaced, kept here as the reference: the same checks, the same float
operations in the same order, so the tallies and the block rows must be equal to the bit."""
from __future__ import annotations

import math

import numpy as np

from sim.metrics_kernels import (BLOCK_MISMATCH, COUNT_HAS_PREV, COUNT_PREV_T_NS, COUNT_STEPS, EGO_ROW, FLOAT_TALLIES,
                                 INT_TALLIES, NON_FINITE_EGO, RECORDED, TALLY_MAX_JERK, TALLY_MAX_LAT, TALLY_PREV_ACCEL,
                                 TALLY_PREV_SPEED, TALLY_SPEED_SUM, TIME_NOT_ADVANCING, block_columns, record_tick)


class ReferenceTally:
    """The former MetricsRecorder.update's ego bookkeeping and row, in Python floats."""

    def __init__(self, jerk_min_speed_mps: float):
        self.jerk_min_speed_mps = jerk_min_speed_mps
        self.steps, self.speed_sum, self.max_lat, self.max_jerk = 0, 0.0, 0.0, 0.0
        self.prev: tuple[int, float, float] | None = None

    def update(self, pose, centre, t_ns, speed, accel, yaw_rate, length, width):
        ego_x, ego_y, ego_yaw = pose.tolist()
        c_x, c_y = centre.tolist()
        isfinite = math.isfinite
        if not (isfinite(ego_x) and isfinite(ego_y) and isfinite(ego_yaw) and isfinite(c_x) and isfinite(c_y)
                and isfinite(speed) and isfinite(accel) and isfinite(yaw_rate)):
            return NON_FINITE_EGO, None
        prev = self.prev
        if prev is not None and t_ns <= prev[0]:
            return TIME_NOT_ADVANCING, None
        self.steps += 1
        self.speed_sum += speed
        lat = abs(speed * yaw_rate)
        if lat > self.max_lat:
            self.max_lat = lat
        if prev is not None:
            t_prev, a_prev, v_prev = prev
            if min(v_prev, speed) > self.jerk_min_speed_mps:
                jerk = abs((accel - a_prev) / ((t_ns - t_prev) * 1e-9))
                if jerk > self.max_jerk:
                    self.max_jerk = jerk
        self.prev = (t_ns, accel, speed)
        dt_ns = 0 if prev is None else t_ns - prev[0]
        return RECORDED, np.array([(ego_x, ego_y, ego_yaw, c_x, c_y, length, width, speed, dt_ns)])[0]


def read_only(a):
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def test_record_tick_matches_the_python_update_to_the_bit():
    rng = np.random.default_rng(7)
    for trial in range(40):
        n, ticks = int(rng.integers(0, 6)), 64
        jerk_min = float(rng.choice([0.0, 0.5, 3.0]))
        ref = ReferenceTally(jerk_min)
        tallies, counts = np.zeros(FLOAT_TALLIES), np.zeros(INT_TALLIES, dtype=np.int64)
        block = np.full((ticks, block_columns(n)), -1.0)
        rows, bxy = block[:, :EGO_ROW], block[:, EGO_ROW:EGO_ROW + 2 * n].reshape(ticks, n, 2)
        byaw, bspeed = block[:, EGO_ROW + 2 * n:EGO_ROW + 3 * n], block[:, EGO_ROW + 3 * n:]
        t_ns, row = int(rng.integers(-10**9, 10**9)), 0
        for _ in range(ticks):
            t_ns += int(rng.choice([-3, 0, 1, 7, 10_000_000, 33_333_333]))
            pose, centre = rng.normal(0.0, 300.0, 3), rng.normal(0.0, 300.0, 2)
            speed, accel, yaw_rate = (float(v) for v in rng.normal([8.0, 0.0, 0.0], [6.0, 3.0, 0.3]))
            if rng.random() < 0.05:
                pose[int(rng.integers(0, 3))] = rng.choice([np.nan, np.inf])
            if rng.random() < 0.03:
                yaw_rate = math.nan
            xy, yaw, speeds = rng.normal(0.0, 100.0, (n, 2)), rng.normal(0.0, 2.0, n), rng.normal(10.0, 5.0, n)
            if n and rng.random() < 0.1:
                xy[int(rng.integers(0, n)), 0] = np.nan
            length, width = float(rng.uniform(3.0, 6.0)), float(rng.uniform(1.5, 2.5))
            expected, expected_row = ref.update(pose, centre, t_ns, speed, accel, yaw_rate, length, width)
            got = record_tick(read_only(pose), read_only(centre), t_ns, speed, accel, yaw_rate, length, width,
                              read_only(xy), read_only(yaw), read_only(speeds), jerk_min, row, block, tallies, counts)
            assert got == expected
            if got == RECORDED:
                assert rows[row].tobytes() == expected_row.tobytes()
                assert bxy[row].tobytes() == xy.tobytes() and byaw[row].tobytes() == yaw.tobytes()
                assert bspeed[row].tobytes() == speeds.tobytes()
                row += 1
            assert counts[COUNT_STEPS] == ref.steps
            assert (counts[COUNT_HAS_PREV] == 1) == (ref.prev is not None)
            if ref.prev is not None:
                assert counts[COUNT_PREV_T_NS] == ref.prev[0]
                assert tallies[[TALLY_PREV_ACCEL, TALLY_PREV_SPEED]].tolist() == [ref.prev[1], ref.prev[2]]
            assert tallies[[TALLY_SPEED_SUM, TALLY_MAX_LAT, TALLY_MAX_JERK]].tolist() == [
                ref.speed_sum, ref.max_lat, ref.max_jerk]
        assert (block[row:] == -1.0).all()  # nothing written for rejected ticks


def test_record_tick_refuses_a_block_that_does_not_fit_the_actors():
    block = np.full((4, block_columns(2)), -1.0)
    tallies, counts = np.zeros(FLOAT_TALLIES), np.zeros(INT_TALLIES, dtype=np.int64)
    pose, centre = read_only([1.0, 2.0, 0.1]), read_only([2.0, 2.0])
    for xy, yaw, speed, row in ((np.zeros((3, 2)), np.zeros(3), np.zeros(3), 0),  # three actors, a block for two
                                (np.zeros((2, 2)), np.zeros(2), np.zeros(1), 0),  # a short speed column
                                (np.zeros((2, 2)), np.zeros(2), np.zeros(2), 4),  # past the block's rows
                                (np.zeros((2, 2)), np.zeros(2), np.zeros(2), -1)):
        assert record_tick(pose, centre, 5, 1.0, 0.0, 0.0, 4.5, 1.8, read_only(xy), read_only(yaw), read_only(speed),
                           0.5, row, block, tallies, counts) == BLOCK_MISMATCH
    assert (block == -1.0).all() and not tallies.any() and not counts.any()
