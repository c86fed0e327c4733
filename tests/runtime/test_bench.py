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
