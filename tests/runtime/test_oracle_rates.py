"""The oracle streams of a closed-loop run deliver at their configured rates whatever the physics
rate: they sample the world at the first physics tick at or after each nominal instant.

Before, a message went out only on ticks that were exact multiples of the period: a 30 Hz oracle
at 100 Hz physics delivered one message in a run (MINIMAL_RISK "oracle object stream lost" at
0.1 s), and a 300 Hz physics rate left both oracle streams with one message each.
"""
import dataclasses

import pytest

from runtime.closed_loop import ClosedLoop, RunOptions, next_sample_ns
from runtime.errors import UsageError
from runtime.stack_config import RatesHz, StackConfig
from sim.scenario import load_scenario

MS = 1_000_000


def test_next_sample_keeps_the_nominal_grid_and_skips_passed_instants():
    period = 33_333_333  # 30 Hz
    assert next_sample_ns(0, period, 0) == period
    assert next_sample_ns(period, period, 40 * MS) == 2 * period  # sampled late: the grid holds
    assert next_sample_ns(period, period, 200 * MS) == 7 * period  # 6 instants passed: none bunched


# 3 s at the rate and the sample at t = 0; at 7 Hz the 22nd instant (21 periods of 142857143 ns)
# falls 3 ns after the end.
@pytest.mark.parametrize("rate_hz, messages", [(30.0, 91), (7.0, 21), (10.0, 31)])
def test_an_oracle_rate_that_does_not_divide_the_physics_rate_is_kept(rate_hz, messages):
    sc = load_scenario("free_road")
    sc = dataclasses.replace(sc, oracle=dataclasses.replace(sc.oracle, rate_hz=rate_hz))
    s = ClosedLoop(sc, RunOptions(seed=0, duration_s=3.0)).run()
    assert s["sensors"]["oracle"]["messages"] == messages
    assert s["modes"] == []


def test_a_physics_rate_above_the_oracle_rates_keeps_them():
    cfg = StackConfig(rates_hz=RatesHz(physics=300.0))
    s = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=3.0), cfg).run()
    # Ticks every 3333333 ns: the last before the end is 2.9999997 s, so the samples due at 3.0 s
    # are not taken (10 Hz: 0 .. 2.9 s; 50 Hz: 0 .. 2.98 s).
    assert s["sensors"]["oracle"]["messages"] == 30 and s["sensors"]["ego"]["messages"] == 150
    assert s["modes"] == []


def test_an_oracle_rate_above_the_physics_rate_is_refused():
    cfg = StackConfig(rates_hz=RatesHz(physics=20.0))
    with pytest.raises(UsageError, match=r"oracle ego stream's rate \(50 Hz\) is above the physics rate"):
        ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=1.0), cfg)
