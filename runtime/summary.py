"""Run summaries: per-stage timing statistics and the human-readable table."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from core.messages import StageTiming

WALL_CLOCK_KEYS = ("real_time_factor", "wall_time_s", "stages")  # differ run to run by nature


def stage_stats(timings: Iterable[StageTiming]) -> dict[str, dict[str, float]]:
    by_stage: dict[str, list[StageTiming]] = {}
    for rec in timings:
        by_stage.setdefault(rec.stage, []).append(rec)
    out = {}
    for name in sorted(by_stage):
        recs = by_stage[name]
        dur_ms = np.array([r.duration_ns for r in recs], dtype=np.float64) / 1e6
        queue_ms = np.array([r.t_ns - r.ready_ns for r in recs], dtype=np.float64) / 1e6
        out[name] = {
            "runs": len(recs),
            "p50_ms": round(float(np.percentile(dur_ms, 50)), 4),
            "p90_ms": round(float(np.percentile(dur_ms, 90)), 4),
            "p99_ms": round(float(np.percentile(dur_ms, 99)), 4),
            "max_ms": round(float(dur_ms.max()), 4),
            "budget_ms": recs[0].budget_ns / 1e6,
            "misses": int(sum(r.missed for r in recs)),
            "queue_p99_ms": round(float(np.percentile(queue_ms, 99)), 4),
        }
    return out


def format_summary(s: dict) -> str:
    lines = [
        f"rtdrive sim  scenario={s['scenario']}  seed={s['seed']}  mode={s['mode']}  "
        f"perception={s['perception']}  duration={s['duration_s']:.1f} s",
        *([f"  providers: " + ", ".join(f"{name}={r['provider']}" + (f" ({r['note']})" if r.get('note') else "")
                                         for name, r in s["providers"].items())] if s.get("providers") else []),
        "",
        f"  collisions            {s['collisions']}",
        # Beside the collisions: a run that leaves the road can have none. Seconds to 10 ms (one
        # physics tick), so a single tick off the road does not print as 0.0 s.
        f"  off road              {s['max_off_road_m']:.2f} m max, {s['off_road_s']:.2f} s",
        f"  min TTC               {_fmt(s['min_ttc_s'], 's')}",
        f"  min distance          {_fmt(s['min_distance_m'], 'm')}",
        f"  mean speed            {s['mean_speed_mps']:.2f} m/s   progress {s['progress_m']:.1f} m",
        f"  max |jerk|            {s['max_abs_jerk_mps3']:.2f} m/s^3",
        f"  max |lateral accel|   {s['max_abs_lat_accel_mps2']:.2f} m/s^2",
        f"  lane-centre RMSE      {s['lane_center_rmse_m']:.3f} m",
        f"  real-time factor      {s['real_time_factor']:.1f}x  ({s['wall_time_s']:.2f} s wall)",
        "",
        f"  {'stage':<20}{'runs':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'budget':>9}{'misses':>8}",
    ]
    for name, st in s["stages"].items():
        lines.append(f"  {name:<20}{st['runs']:>6}{st['p50_ms']:>9.3f}{st['p99_ms']:>9.3f}"
                     f"{st['max_ms']:>9.3f}{st['budget_ms']:>9.1f}{st['misses']:>8}")
    lines += ["", f"  {'sensor':<12}{'messages':>9}{'dropped':>9}{'late':>6}{'nonfinite':>10}{'ekf gate':>9}"
                  f"{'frozen':>8}"]
    for name, c in s["sensors"].items():
        lines.append(f"  {name:<12}{c['messages']:>9}{c['dropped']:>9}{c['late']:>6}{c['nonfinite']:>10}"
                     f"{c['rejected_by_ego_filter']:>9}{c.get('frozen', 0):>8}")
    ego = s["ego_filter"]
    if any(ego.values()):  # all zero: the oracle ego drove, the filter never ran
        others = ", ".join(f"{k} {v}" for k, v in ego.items() if k != "applied" and v)
        lines.append(f"  ego filter: {ego['applied']} applied" + (f"; {others}" if others else ""))
    lines += ["", planner_line(s["planner"])]
    dbw = s.get("drive_by_wire")  # absent from summaries of logs recorded before it existed
    if dbw and dbw["tripped_at_s"] is not None:
        lines.append(f"  drive-by-wire: no control command for {dbw['command_timeout_s']:g} s at "
                     f"t={dbw['tripped_at_s']:.2f} s; braking at {dbw['fallback_decel_mps2']:g} m/s^2 "
                     "to a stop, the stack's commands ignored from then on")
    lines += ["", "  modes:" + ("" if s["modes"] else " NOMINAL throughout")]
    for m in s["modes"]:
        lines.append(f"    t={m['t_s']:7.2f} s  {m['mode']:<15} {m['reason']}")
    return "\n".join(lines)


def planner_line(p: dict) -> str:
    """Plans, emergency plans and lane changes started, then the planner's non-zero counters."""
    starts = p["lane_change_starts"]
    others = ", ".join(f"{k} {v}" for k, v in p["counters"].items() if v)
    return (f"  planner: {p['plans']} plans ({p['emergency_plans']} emergency), "
            f"{starts} lane change{'' if starts == 1 else 's'} started" + (f"; {others}" if others else ""))


def _fmt(v, unit: str) -> str:
    return "none" if v is None else f"{v:.2f} {unit}"
