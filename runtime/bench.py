"""`rtdrive bench`: median and p99 of every registered benchmark, as a table or JSON.

Each benchmarks/bench_*.py module exposes ``BENCHMARKS = {name: make}``; ``make()`` builds the
inputs and returns a zero-argument callable, the thing timed. A callable may carry
``bytes_per_call`` (throughput is then reported as MB/s at the median), ``extra`` (a dict of
figures it fills while running, reported as is) and ``reference`` (the name of a benchmark of the
same work: the ratio of medians is reported when both run). Timing uses perf_counter_ns
around each call after a warm-up, with the heap frozen as in a run (runtime/heap.py); on a shared,
noisy machine compare ratios from one run. Around each benchmark a short probe
(runtime/host_probe.py) measures how much of the CPU the host withheld: ``host_lost_pct`` and
``host_max_gap_ms`` say whether a p99 is the code's or the machine's.

A callable that replays a fixed input sequence may declare ``cycle``, the number of calls after
which it starts that sequence again from the same state (its first call is the first input). With
``passes`` > 1 (``rtdrive bench --passes K``) a fresh callable is then also timed over K whole
cycles, and each input keeps its fastest time: ``min_of_passes_median_ms`` and
``min_of_passes_p99_ms`` are the median and p99 of those minima. A host pause or a slow phase
rarely lands on the same input in every pass, so these are the code's own costs on an unloaded
core, its systematic tail included (an input that is slow in every pass stays slow); the plain
median and p99 above are what this host gave, and they stay the figures that targets refer to.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from typing import Callable, TextIO

import numpy as np

import benchmarks
from runtime.heap import long_lived_frozen
from runtime.host_probe import DEFAULT_PROBE_SECONDS, probe_host

DEFAULT_MIN_RUNS = 30
# A p99 is the 1% tail: from 2,000 calls of a few microseconds (10 ms of sampling) it mostly told
# what the shared host did in those 10 ms (the sync p99 ranged 8.4-13.1 us over six such samples,
# 8.5-8.7 us over 29,000 calls). Up to 20,000 calls, still within TARGET_SECONDS per benchmark.
DEFAULT_MAX_RUNS = 20_000
TARGET_SECONDS = 2.0  # per benchmark, to bound the whole `rtdrive bench`


def all_benchmarks() -> dict[str, Callable]:
    registry: dict[str, Callable] = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if not info.name.startswith("bench_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        for name, make in getattr(module, "BENCHMARKS", {}).items():
            if name in registry:
                raise ValueError(f"benchmark {name!r} is defined twice (second in {info.name})")
            registry[name] = make
    return registry


def time_callable(fn: Callable[[], object], repeat: int | None) -> np.ndarray:
    """Durations [ms] of repeated calls, after warm-up; the count adapts to the call's cost."""
    for _ in range(3):
        fn()
    if repeat is None:
        t0 = time.perf_counter()
        fn()
        one_s = max(time.perf_counter() - t0, 1e-7)
        repeat = int(np.clip(TARGET_SECONDS / one_s, DEFAULT_MIN_RUNS, DEFAULT_MAX_RUNS))
    out = np.empty(repeat)
    with long_lived_frozen():  # as the runners step the stack (runtime/heap.py)
        for i in range(repeat):
            t0 = time.perf_counter_ns()
            fn()
            out[i] = (time.perf_counter_ns() - t0) / 1e6
    return out


def time_passes(fn: Callable[[], object], cycle: int, passes: int,
                clock: Callable[[], int] = time.perf_counter_ns) -> np.ndarray:
    """Durations [ms], shape (passes, cycle), of ``passes`` passes over one input cycle of a fresh
    benchmark callable (its first call is the first input of its cycle, so call k of every pass
    is the same input in the same state). No warm-up: a cold first pass is what the per-input
    minimum (``min_of_passes``) discards."""
    if cycle < 1 or passes < 2:
        raise ValueError(f"time_passes: cycle {cycle} and passes {passes}; need cycle >= 1 and passes >= 2")
    ns = np.empty((passes, cycle))
    with long_lived_frozen():  # as in time_callable
        for row in ns:
            for i in range(cycle):
                t0 = clock()
                fn()
                row[i] = clock() - t0
    return ns / 1e6


def min_of_passes(ms: np.ndarray) -> dict[str, float]:
    """Median and p99 over inputs of each input's fastest time in ``ms`` (passes, cycle)."""
    best = ms.min(axis=0)
    return {"min_of_passes_median_ms": round(float(np.median(best)), 5),
            "min_of_passes_p99_ms": round(float(np.percentile(best, 99)), 5), "passes": int(ms.shape[0])}


def run_benchmarks(registry: dict[str, Callable], names: list[str], repeat: int | None,
                   progress: TextIO | None = None,
                   host_probe_s: float = DEFAULT_PROBE_SECONDS, passes: int = 0) -> dict[str, dict]:
    """Time each named benchmark; ``host_probe_s`` > 0 adds the host probe's figures (0: none);
    ``passes`` > 1 adds the per-input minimum over that many input cycles to every benchmark that
    declares its ``cycle`` (module docstring)."""
    if passes == 1 or passes < 0:
        raise ValueError(f"passes: {passes}; 0 (off) or at least 2")
    if repeat is not None and repeat < 1:
        raise ValueError(f"repeat: {repeat}; None (per benchmark) or at least 1")
    results: dict[str, dict] = {}
    references: dict[str, str] = {}
    for name in names:
        if progress is not None:
            print(f"  bench {name} ...", file=progress, flush=True)
        fn = registry[name]()
        before = probe_host(host_probe_s) if host_probe_s > 0 else None
        ms = time_callable(fn, repeat)
        host = {}
        if before is not None:
            after = probe_host(host_probe_s)
            host = {"host_lost_pct": round(50.0 * (before.lost_fraction + after.lost_fraction), 2),
                    "host_max_gap_ms": round(max(before.max_gap_ms, after.max_gap_ms), 3)}
        throughput = {}
        if getattr(fn, "bytes_per_call", None):
            throughput["mb_per_s"] = round(fn.bytes_per_call / 1e6 / (float(np.median(ms)) / 1e3), 1)
        results[name] = {"median_ms": round(float(np.median(ms)), 5),
                         "p99_ms": round(float(np.percentile(ms, 99)), 5),
                         "mean_ms": round(float(ms.mean()), 5), "max_ms": round(float(ms.max()), 5),
                         "n": int(ms.size), **throughput, **getattr(fn, "extra", {}), **host}
        if passes and getattr(fn, "cycle", None):
            if progress is not None:
                print(f"  bench {name}: {passes} passes over its {fn.cycle} inputs ...", file=progress, flush=True)
            fresh = registry[name]()
            results[name].update(min_of_passes(time_passes(fresh, fresh.cycle, passes)))
        if getattr(fn, "reference", None):
            references[name] = fn.reference
    # A benchmark that names a reference (another implementation of the same work) reports the
    # ratio of medians when both ran in this run: on a noisy host only same-run ratios compare.
    for name, ref in references.items():
        if ref in results:
            results[name][f"median_vs_{ref}"] = round(results[name]["median_ms"] / results[ref]["median_ms"], 2)
    return results


def format_results(results: dict[str, dict]) -> str:
    lines = [f"{'benchmark':<28}{'median ms':>11}{'p99 ms':>10}{'n':>7}  extra"]
    for name, r in results.items():
        extra = {k: v for k, v in r.items() if k not in ("median_ms", "p99_ms", "mean_ms", "max_ms", "n")}
        lines.append(f"{name:<28}{r['median_ms']:>11.4f}{r['p99_ms']:>10.4f}{r['n']:>7}  "
                     + "  ".join(f"{k}={v}" for k, v in extra.items()))
    return "\n".join(lines)
