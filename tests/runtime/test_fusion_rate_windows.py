"""A sync window allows the wait in fusion's inbox: a message that arrives just after a fusion run
is seen one fusion period later. The window's margin was a fixed 20 ms (the 50 Hz period), so at
rates_hz.fusion = 25 the synchroniser dropped half the IMU and wheel samples as late and the rate
rule degraded a healthy run at 0.13 s."""
from __future__ import annotations

import pytest

from runtime.closed_loop import SYNC_MARGIN_S, ClosedLoop, RunOptions, sync_streams
from runtime.stack_config import RatesHz, StackConfig
from sim.scenario import load_scenario

NS_PER_S = 1_000_000_000


@pytest.mark.parametrize("fusion_hz", [25.0, 12.5])
def test_a_slower_fusion_rate_drops_no_sensor_data_as_late(fusion_hz):
    cfg = StackConfig(rates_hz=RatesHz(fusion=fusion_hz))
    s = ClosedLoop(load_scenario("lead_brake"), RunOptions(duration_s=3.0, perception="oracle", sensors=True),
                   cfg).run()
    assert {name: c["rejected_by_sync"] for name, c in s["sensors"].items()} == dict.fromkeys(s["sensors"], 0)
    assert s["modes"] == [] and s["collisions"] == 0


def test_windows_take_the_fusion_period_or_the_margin_whichever_is_longer():
    sc = load_scenario("lead_brake")
    default = sync_streams(sc, None, StackConfig())
    slow = sync_streams(sc, None, StackConfig(rates_hz=RatesHz(fusion=25.0)))
    fast = sync_streams(sc, None, StackConfig(rates_hz=RatesHz(fusion=100.0)))
    assert default["ego"].latency_window_ns == fast["ego"].latency_window_ns == round(SYNC_MARGIN_S * NS_PER_S)
    assert slow["ego"].latency_window_ns == slow["oracle"].latency_window_ns == NS_PER_S // 25
