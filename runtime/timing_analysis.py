"""Timing analysis of one run: per-stage compute and queueing statistics, the control loop's period
jitter, end-to-end latency per sensor derived by causality, and the budget gate.

Everything here is arithmetic on recorded integers (``StageTiming`` records, delivery instants,
synchroniser decisions), so the same functions serve realtime, latency and ideal runs, and tests
feed them hand-made records.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from core.messages import StageTiming

NS_PER_MS = 1e6


@dataclass(frozen=True, slots=True)
class Deliveries:
    """Every delivery of one topic, in delivery order: when it became visible and the message's t_ns
    (for stage outputs, the start time of the run that produced it)."""

    delivered_ns: np.ndarray  # (N,) int64
    msg_t_ns: np.ndarray  # (N,) int64

    @staticmethod
    def of(pairs: Sequence[tuple[int, int]]) -> "Deliveries":
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        # Sorted by the producing run's time so a run can be looked up by bisection.
        order = np.argsort(arr[:, 1], kind="stable")
        return Deliveries(arr[order, 0], arr[order, 1])


def quantiles_ms(values_ns: np.ndarray) -> dict[str, float]:
    """p50, p90, p99 and max in ms; zeros for an empty sample (reported with its count of 0)."""
    if values_ns.size == 0:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    q = np.percentile(values_ns.astype(np.float64), (50, 90, 99)) / NS_PER_MS
    return {"p50_ms": round(float(q[0]), 4), "p90_ms": round(float(q[1]), 4), "p99_ms": round(float(q[2]), 4),
            "max_ms": round(float(values_ns.max()) / NS_PER_MS, 4)}


def stage_report(timings: Iterable[StageTiming], superseded: Mapping[str, int] | None = None) -> dict[str, dict]:
    """Per stage: compute-time quantiles against the budget, misses (compute > budget), miss rate,
    and the queueing delay (ready -> started) as a separate distribution."""
    by_stage: dict[str, list[StageTiming]] = {}
    for rec in timings:
        by_stage.setdefault(rec.stage, []).append(rec)
    out = {}
    for name in sorted(by_stage):
        recs = by_stage[name]
        arr = np.array([(r.duration_ns, r.t_ns - r.ready_ns, r.budget_ns, r.missed) for r in recs], dtype=np.int64)
        misses = int(arr[:, 3].sum())
        queue = quantiles_ms(arr[:, 1])
        out[name] = {
            "runs": len(recs), **quantiles_ms(arr[:, 0]),
            "budget_ms": float(arr[-1, 2]) / NS_PER_MS, "misses": misses,
            "miss_rate": round(misses / len(recs), 4),
            "queue_p50_ms": queue["p50_ms"], "queue_p99_ms": queue["p99_ms"], "queue_max_ms": queue["max_ms"],
            "superseded": int((superseded or {}).get(name, 0)),
        }
    return out


def period_jitter(start_ns: np.ndarray, period_ns: int) -> dict[str, float]:
    """Start-to-start intervals minus the nominal period: quantiles of |jitter| in ms. A skipped
    period shows as a full period of jitter, as it should."""
    starts = np.sort(np.asarray(start_ns, dtype=np.int64))
    period_ms = int(period_ns) / NS_PER_MS  # reported with the figures: the control rate is configurable
    if starts.size < 2:
        return {"intervals": 0, "period_ms": period_ms, "p50_abs_ms": 0.0, "p99_abs_ms": 0.0, "max_abs_ms": 0.0,
                "mean_ms": 0.0}
    jitter_ns = np.diff(starts) - int(period_ns)
    q = quantiles_ms(np.abs(jitter_ns))
    return {"intervals": int(jitter_ns.size), "period_ms": period_ms, "p50_abs_ms": q["p50_ms"],
            "p99_abs_ms": q["p99_ms"], "max_abs_ms": q["max_ms"], "mean_ms": round(float(jitter_ns.mean()) / NS_PER_MS, 4)}


def e2e_latency_ns(applied_now_ns: np.ndarray, applied_t_ns: np.ndarray, fusion: Deliveries,
                   plan: Deliveries, command: Deliveries) -> tuple[np.ndarray, np.ndarray]:
    """Capture -> command latency of each applied sensor message, by causality:

    the fusion run at ``applied_now_ns`` applied the message; its output became visible when that
    run's /fusion/tracks was delivered; the first planning run starting at or after that delivery
    used it, and the first control run starting at or after that plan's delivery turned it into a
    command; latency = that command's delivery - the message's capture time ``applied_t_ns``.
    Returns (latency_ns, resolved): messages whose chain the run ended before are not resolved.
    """
    now = np.asarray(applied_now_ns, dtype=np.int64)
    t_capture = np.asarray(applied_t_ns, dtype=np.int64)
    resolved = np.zeros(now.shape, dtype=bool)
    latency = np.zeros(now.shape, dtype=np.int64)
    if now.size == 0 or fusion.msg_t_ns.size == 0 or plan.msg_t_ns.size == 0 or command.msg_t_ns.size == 0:
        return latency, resolved
    i = np.minimum(np.searchsorted(fusion.msg_t_ns, now), fusion.msg_t_ns.size - 1)
    ok = fusion.msg_t_ns[i] == now
    f_del = fusion.delivered_ns[i]
    j = np.searchsorted(plan.msg_t_ns, f_del, side="left")
    ok &= j < plan.msg_t_ns.size
    p_del = plan.delivered_ns[np.minimum(j, plan.msg_t_ns.size - 1)]
    k = np.searchsorted(command.msg_t_ns, p_del, side="left")
    ok &= k < command.msg_t_ns.size
    c_del = command.delivered_ns[np.minimum(k, command.msg_t_ns.size - 1)]
    latency[ok] = c_del[ok] - t_capture[ok]
    return latency, ok


def e2e_report(applied: Sequence[tuple[int, str, int]], fusion: Deliveries, plan: Deliveries,
               command: Deliveries) -> dict[str, dict]:
    """Per stream: p50/p99/max capture -> command latency over its applied messages."""
    if not applied:
        return {}
    now = np.array([a[0] for a in applied], dtype=np.int64)
    streams = np.array([a[1] for a in applied])
    t_capture = np.array([a[2] for a in applied], dtype=np.int64)
    latency, ok = e2e_latency_ns(now, t_capture, fusion, plan, command)
    out = {}
    for name in sorted(set(streams.tolist())):
        sel = streams == name
        q = quantiles_ms(latency[sel & ok])
        out[name] = {"messages": int(sel.sum()), "resolved": int((sel & ok).sum()),
                     "p50_ms": q["p50_ms"], "p99_ms": q["p99_ms"], "max_ms": q["max_ms"]}
    return out


def gate(stages: Mapping[str, dict], e2e: Mapping[str, dict], e2e_p99_limit_ms: float) -> list[str]:
    """Every broken limit as a sentence naming the stage or stream: p99 compute over the stage's
    budget, or p99 end-to-end latency over the limit. Empty: the run passes."""
    broken = [f"{name}: p99 {st['p99_ms']:.3f} ms > budget {st['budget_ms']:g} ms"
              for name, st in stages.items() if st["p99_ms"] > st["budget_ms"]]
    broken += [f"end-to-end {name}: p99 {st['p99_ms']:.1f} ms > limit {e2e_p99_limit_ms:g} ms"
               for name, st in e2e.items() if st["resolved"] and st["p99_ms"] > e2e_p99_limit_ms]
    return broken
