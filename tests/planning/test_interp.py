"""planning/interp.py's compiled np.interp against np.interp itself, to the bit."""
from __future__ import annotations

import numpy as np

from planning.interp import interp_into, interp_one


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    nan = np.isnan(want)  # NaN where NaN: its sign is the operand order's
    return bool(np.array_equal(np.isnan(got), nan) and got[~nan].tobytes() == want[~nan].tobytes())


def test_interp_kernels_equal_numpy_interp():
    """Regular grids (a plan's), random increasing, repeated and unordered sample points, lengths
    2..60, queries inside, outside, on samples and NaN, fp with NaN and inf, read-only inputs."""
    rng = np.random.default_rng(7)
    for trial in range(3000):
        n = int(rng.integers(2, 61))
        kind = trial % 4
        if kind == 0:
            xp = np.arange(n) * 0.1
        elif kind == 1:
            xp = np.sort(rng.uniform(-5.0, 5.0, n))
        elif kind == 2:
            xp = np.sort(rng.choice(np.arange(6) * 0.5, n))  # repeated sample points
        else:
            xp = rng.uniform(-5.0, 5.0, n)  # unordered: numpy's search path decides
        fp = rng.normal(0.0, 3.0, n)
        if trial % 7 == 0:
            fp[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
        m = int(rng.integers(1, 70))
        x = rng.choice([rng.uniform(xp.min() - 1.0, xp.max() + 1.0), rng.choice(xp)], m) if m else np.zeros(0)
        x = np.where(rng.random(m) < 0.3, rng.uniform(xp.min() - 1.0, xp.max() + 1.0, m), x)
        if trial % 5 == 0:
            x[rng.integers(m)] = np.nan
        if trial % 3 == 0:
            x = np.sort(x)  # plan times: increasing, the guess carried along
        for a in (x, xp, fp):
            a.flags.writeable = False
        with np.errstate(all="ignore"):
            want = np.interp(x, xp, fp)
        got = np.empty(m)
        interp_into(x, xp, fp, got)
        assert _same(got, want), trial
        with np.errstate(all="ignore"):
            want_one = np.interp(x[0], xp, fp)
        assert _same(np.array([interp_one(x[0], xp, fp)]), np.array([want_one])), trial


def test_previous_plan_rows_equal_the_numpy_form():
    """The lattice's previous-plan terms (planning/lattice.py) against their numpy form, to the bit:
    ages inside, at and past the previous plan's end, negative and NaN."""
    from planning.lattice import _previous_plan_rows

    rng = np.random.default_rng(8)
    t_s = np.arange(51) * 0.1
    for trial in range(500):
        last_t = t_s if trial % 2 else np.sort(rng.uniform(0.0, 5.0, 51))
        last_d = rng.normal(0.0, 2.0, 51)
        age = float(rng.choice([rng.uniform(-0.5, 6.0), 0.1, 5.0, 0.0, np.nan]))
        got_d, got_w = _previous_plan_rows(age, t_s, last_t, last_d)
        with np.errstate(all="ignore"):
            t_prev = age + t_s
            want_d, want_w = np.interp(t_prev, last_t, last_d), (t_prev <= last_t[-1]).astype(np.float64)
        assert _same(got_d, want_d) and got_w.tobytes() == want_w.tobytes(), trial
