"""The host probe (runtime/host_probe.py) counts pauses between clock reads, and rtdrive bench
reports them beside each benchmark."""
from __future__ import annotations

import pytest

from runtime.bench import run_benchmarks
from runtime.cli import main
from runtime.host_probe import probe_host


def _clock(steps_ns):
    """A fake clock: starts at 0 and advances by the given steps, then by 100 ns forever."""
    t, steps = [0], iter(steps_ns)

    def read():
        value = t[0]
        t[0] += next(steps, 100)
        return value
    return read


def test_pauses_are_counted_and_the_loop_itself_is_not():
    # 100 ns reads, with one 3 ms and one 0.2 ms pause: 3.2 ms lost of a 10 ms probe, longest 3 ms.
    steps = [100] * 1000 + [3_000_000] + [100] * 1000 + [200_000]
    got = probe_host(0.01, clock=_clock(steps))
    assert got.gaps == 2
    assert got.max_gap_ms == 3.0
    span_ns = 10_000_000  # the probe stops at the first read at or past its end
    assert abs(got.lost_fraction - 3_200_000 / span_ns) < 1e-4


def test_a_clean_host_loses_nothing_and_bad_durations_are_refused():
    assert probe_host(0.001, clock=_clock([])).lost_fraction == 0.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="seconds must be positive"):
            probe_host(bad)


def test_bench_reports_the_probe_and_can_go_without(capsys):
    registry = {"spin": lambda: (lambda: sum(range(100)))}
    with_probe = run_benchmarks(registry, ["spin"], repeat=20, host_probe_s=0.01)["spin"]
    assert 0.0 <= with_probe["host_lost_pct"] <= 100.0 and with_probe["host_max_gap_ms"] >= 0.0
    without = run_benchmarks(registry, ["spin"], repeat=20, host_probe_s=0.0)["spin"]
    assert "host_lost_pct" not in without and "host_max_gap_ms" not in without
    assert main(["bench", "sync", "--host-probe", "-1"]) == 2
    assert "--host-probe: -1.0 is out of range" in capsys.readouterr().err
