"""rtdrive bench --passes (runtime/bench.py): each input's fastest time over whole input cycles."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from runtime.bench import min_of_passes, run_benchmarks, time_passes
from runtime.cli import main


def _clock_for(durations_ns: np.ndarray):
    """A fake perf_counter_ns whose successive (start, stop) reads are durations_ns apart."""
    reads = []
    t = 1_000
    for d in durations_ns.ravel().tolist():
        reads += [t, t + int(d)]
        t += int(d) + 7
    it = iter(reads)
    return lambda: next(it)


def test_time_passes_times_every_input_of_every_pass_in_order():
    durations = np.array([[5_000, 900, 3_000], [4_000, 800, 9_000]])
    calls = itertools.count()
    ms = time_passes(lambda: next(calls), cycle=3, passes=2, clock=_clock_for(durations))
    assert next(calls) == 6  # 2 passes x 3 inputs, nothing else called
    np.testing.assert_array_equal(ms, durations / 1e6)


def test_min_of_passes_keeps_a_systematic_tail_and_drops_a_host_pause():
    rng = np.random.default_rng(0)
    base = np.full(1_000, 4.0)
    base[::50] = 9.0  # 2 % of the inputs are slow in every pass: the code's own tail
    ms = base + rng.uniform(0.0, 0.5, (5, 1_000))
    ms[2, 100:400] += 30.0  # a host pause over 300 inputs of one pass
    plain_p99 = np.percentile(ms, 99)
    out = min_of_passes(ms)
    assert out["passes"] == 5
    assert 9.0 <= out["min_of_passes_p99_ms"] <= 9.5  # the systematic tail survives ...
    assert plain_p99 > 30.0  # ... while the pause sets the plain p99
    assert 4.0 <= out["min_of_passes_median_ms"] <= 4.5


def test_passes_time_a_fresh_callable_and_only_benchmarks_with_a_cycle():
    made = []

    def make(cycle):
        def factory():
            n = [0]

            def fn():
                n[0] += 1
            if cycle:
                fn.cycle = cycle
            made.append(n)
            return fn
        return factory

    registry = {"cycled": make(7), "plain": make(None)}
    out = run_benchmarks(registry, ["cycled", "plain"], repeat=10, host_probe_s=0.0, passes=3)
    assert out["cycled"]["passes"] == 3 and out["cycled"]["n"] == 10
    assert {"min_of_passes_median_ms", "min_of_passes_p99_ms"} <= set(out["cycled"])
    assert not any(k.startswith("min_of_passes") or k == "passes" for k in out["plain"])
    # cycled: the timed callable (3 warm-up + 10 calls), then a fresh one for exactly 3 x 7 calls.
    assert [n[0] for n in made] == [13, 21, 13]
    assert "min_of_passes_p99_ms" not in run_benchmarks(registry, ["cycled"], repeat=5, host_probe_s=0.0)["cycled"]


@pytest.mark.parametrize("passes", [1, -2])
def test_a_single_pass_is_refused(passes, capsys):
    with pytest.raises(ValueError, match="passes"):
        time_passes(lambda: None, cycle=3, passes=passes)
    with pytest.raises(ValueError, match="passes"):
        run_benchmarks({}, [], repeat=5, passes=passes)
    assert main(["bench", "sync", "--passes", str(passes)]) == 2
    assert "--passes" in capsys.readouterr().err
