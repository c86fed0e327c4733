"""rtdrive bench's harness (runtime/bench.py): result fields and same-run reference ratios."""
from __future__ import annotations

from runtime.bench import run_benchmarks


def _make(reference=None):
    def make():
        def fn():
            sum(range(200))
        if reference:
            fn.reference = reference
        return fn
    return make


def test_reference_ratio_reported_when_both_ran_and_only_then():
    registry = {"fast": _make(), "other": _make(reference="fast")}
    both = run_benchmarks(registry, ["fast", "other"], repeat=50)
    assert set(both["fast"]) >= {"median_ms", "p99_ms", "mean_ms", "max_ms", "n"} and both["fast"]["n"] == 50
    ratio = both["other"]["median_vs_fast"]
    assert ratio == round(both["other"]["median_ms"] / both["fast"]["median_ms"], 2) and ratio > 0
    assert "median_vs_fast" not in both["fast"]
    alone = run_benchmarks(registry, ["other"], repeat=5)
    assert "median_vs_fast" not in alone["other"]


def test_fusion_stack_benchmarks_time_steady_state_work():
    """The traffic-size fusion benchmarks build (each checks that its input keeps every car's
    track, so no call times track churn) and run from the registry."""
    from benchmarks.bench_fusion_stack import BENCHMARKS

    results = run_benchmarks(BENCHMARKS, list(BENCHMARKS), repeat=20, host_probe_s=0.0)
    assert set(results) == {"ego_ekf_update", "tracker_camera_8", "tracker_radar_8"}
    assert all(r["n"] == 20 and 0.0 < r["median_ms"] <= r["max_ms"] for r in results.values())


def test_the_standalone_fusion_benchmark_has_a_run_count_for_each_benchmark():
    """``python -m benchmarks.bench_fusion`` raised KeyError: tracker_imm_100x3 had no run count."""
    from benchmarks.bench_fusion import BENCHMARKS, STANDALONE_RUNS

    assert set(STANDALONE_RUNS) == set(BENCHMARKS)
