"""`rtdrive timing`: arguments, the printed table and the exit code (1: a budget or the e2e limit broken)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from core.config import load_toml
from runtime.perception_modes import DEFAULT_PERCEPTION, PERCEPTION_MODES

# Above this many MB (10^6 bytes) of a log's sensor inputs, --log streams them during the run.
LOG_PRELOAD_MB = 1024.0


def add_timing(sub) -> None:
    p = sub.add_parser("timing", help="run the stack in real time and check every stage against its budget",
                       description="Run the stack on the wall clock (perception on worker threads, a late "
                                   "task runs late and is counted, never caught up in a burst); print "
                                   "per-stage latency, control period jitter and end-to-end latency per "
                                   "sensor. Exit 1 when a stage's p99 exceeds its budget or an end-to-end "
                                   "p99 exceeds the limit.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scenario", default=None, help="built-in name or TOML path (default cut_in)")
    src.add_argument("--log", default=None, metavar="L.mcap", help="feed a recorded log's sensor inputs instead")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="seconds (default: the scenario's)")
    p.add_argument("--log-preload-mb", type=float, default=None, metavar="MB",
                   help="with --log: decode and post the log's sensor inputs before the run when they total "
                        "at most MB megabytes (10^6 bytes), else stream them during the run, which adds "
                        f"their decoding to the measured loop (default {LOG_PRELOAD_MB:g}; 0: always stream)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the simulated world (default 0); not with --log, whose inputs are recorded")
    p.add_argument("--load", type=int, default=0, metavar="N", help="N busy processes alongside the run")
    p.add_argument("--budgets", type=Path, default=None, metavar="FILE",
                   help="TOML: [budgets_ms] keyed by stage (e.g. planning = 20.0), e2e_p99_ms = limit")
    p.add_argument("--config", type=Path, default=None,
                   help="stack config TOML (rates, default budgets); with --log, laid over the recorded config")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the report as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write histograms and a timeline PNG")
    p.add_argument("--perception", choices=PERCEPTION_MODES, default=None,
                   help="default: onnx for a scenario, the recorded mode for a log")
    p.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per model")
    p.add_argument("--rt-priority", type=int, default=10, metavar="P",
                   help="SCHED_FIFO priority of the loop thread when the OS permits (0: normal policy)")
    p.add_argument("--no-latency-loop", dest="latency_loop", action="store_false",
                   help="skip the latency-in-the-loop run on the simulated clock")


def cmd_timing(args) -> int:
    from dataclasses import replace

    from runtime.closed_loop import RunOptions
    from runtime.errors import UsageError, check_output_paths, check_run_options, warn_late_faults
    from runtime.stack_config import StackConfig, load_stack_config
    from runtime.timing import TimingBudgets, latency_in_the_loop, time_log, time_scenario, with_budgets
    from runtime.timing_load import MAX_LOAD_PROCESSES

    if not 0 <= args.load <= MAX_LOAD_PROCESSES:
        raise UsageError(f"--load: {args.load} is out of range; allowed 0..{MAX_LOAD_PROCESSES}")
    if not 0 <= args.rt_priority <= 99:
        raise UsageError(f"--rt-priority: {args.rt_priority} is out of range; allowed 0..99")
    if args.log and args.seed is not None:
        raise UsageError("--seed has no meaning with --log: the log's inputs are recorded, nothing is simulated")
    if args.log_preload_mb is not None and not args.log:
        raise UsageError("--log-preload-mb has no meaning without --log: a scenario's inputs are simulated, not read")
    preload_mb = LOG_PRELOAD_MB if args.log_preload_mb is None else args.log_preload_mb
    if not preload_mb >= 0:  # NaN too
        raise UsageError(f"--log-preload-mb: {args.log_preload_mb} is out of range; allowed 0 or more MB")
    seed = 0 if args.seed is None else args.seed
    check_run_options(args.duration, seed, args.threads)
    check_output_paths(files={"--json": args.json}, folders={"--plot": args.plot})  # before the run, not after
    budgets = load_toml(TimingBudgets, args.budgets) if args.budgets else TimingBudgets()
    source = str(args.budgets or "<defaults>")
    opts = RunOptions(seed=seed, duration_s=args.duration, perception=args.perception or DEFAULT_PERCEPTION,
                      provider=args.provider, threads=args.threads)
    if args.log:
        report = time_log(args.log, replace(opts, perception=args.perception), budgets, source, args.load,
                          args.duration, args.rt_priority, args.config, preload_mb)
    else:
        from sim.scenario import load_scenario

        scenario = load_scenario(args.scenario or "cut_in")
        base_cfg = load_stack_config(args.config) if args.config else StackConfig()
        stack_cfg = with_budgets(base_cfg, budgets, source)
        warn_late_faults("timing", scenario, args.duration)
        report = time_scenario(scenario, opts, stack_cfg, args.load, budgets.e2e_p99_ms, args.rt_priority)
        if args.latency_loop:
            print("  latency-in-the-loop run (simulated clock, measured compute delays)...", file=sys.stderr)
            report["latency_in_the_loop"] = latency_in_the_loop(scenario, opts, stack_cfg)
    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, sort_keys=True))
    if args.plot:
        from runtime.timing_plot import write_plots

        for path in write_plots(report, args.plot):
            print(f"  plot: {path}")
    for line in report["broken"]:
        print(f"  BUDGET BROKEN  {line}", file=sys.stderr)
    return 1 if report["broken"] else 0


def format_report(r: dict) -> str:
    providers = ", ".join(f"{k}={v.get('provider', v) if isinstance(v, dict) else v}"
                          for k, v in r["providers"].items()) or "none"
    lines = [f"rtdrive timing  {r['source']}  perception={r['perception']}  load={r['load']}  "
             f"duration={r['duration_s']:.1f} s  wall={r['wall_s']:.1f} s", f"  providers: {providers}  "
             f"loop SCHED_FIFO: {r['loop_rt_priority'] or 'no'}",
             "", f"  {'stage':<19}{'runs':>6}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'budget':>8}"
                 f"{'miss':>6}{'rate':>7}{'q p50':>8}{'q p99':>8}{'super':>6}   (ms; q = queueing ready->start)"]
    for name, s in r["stages"].items():
        lines.append(f"  {name:<19}{s['runs']:>6}{s['p50_ms']:>8.2f}{s['p90_ms']:>8.2f}{s['p99_ms']:>8.2f}"
                     f"{s['max_ms']:>8.2f}{s['budget_ms']:>8.3g}{s['misses']:>6}{100 * s['miss_rate']:>6.1f}%"
                     f"{s['queue_p50_ms']:>8.2f}{s['queue_p99_ms']:>8.2f}{s['superseded']:>6}")
    j = r["control_jitter"]
    # Reports written before the period was part of them held the default 10 ms control period.
    lines += ["", f"  control period jitter |interval - {j.get('period_ms', 10.0):g} ms|: p50 {j['p50_abs_ms']:.3f} ms  "
                  f"p99 {j['p99_abs_ms']:.3f} ms  max {j['max_abs_ms']:.3f} ms  ({j['intervals']} intervals)"]
    if "log_feed" in r:
        lines.append(_log_feed_line(r))  # beside the jitter: a streamed feed's decoding is part of it
    lines += ["", f"  {'end-to-end':<19}{'msgs':>6}{'used':>6}{'p50':>8}{'p99':>8}{'max':>8}   "
                  f"(ms, capture -> first command; p99 limit {r['e2e_p99_limit_ms']:g} ms)"]
    for name, e in r["e2e"].items():
        lines.append(f"  {name:<19}{e['messages']:>6}{e['resolved']:>6}{e['p50_ms']:>8.1f}{e['p99_ms']:>8.1f}"
                     f"{e['max_ms']:>8.1f}")
    loops = [(k, r[k]) for k in ("closed_loop", "latency_in_the_loop") if k in r]
    if loops:
        # The wall-clock run is the one README and --help call realtime; the JSON key stays closed_loop.
        title = {"closed_loop": "realtime", "latency_in_the_loop": "latency_in_the_loop"}
        lines += ["", f"  {'closed loop':<22}" + "".join(f"{title[k]:>22}" for k, _ in loops)]
        for key in loops[0][1]:
            lines.append(f"  {key:<22}" + "".join(f"{_cell(m.get(key)):>22}" for _, m in loops))
    if "mode_changes" in r:  # reports written before log runs carried them had it for scenarios only
        lines += ["", f"  safety modes: final {r.get('final_mode') or (r.get('closed_loop') or {}).get('final_mode')}"]
        lines += [f"    t={m['t_s']:7.2f} s  {m['mode']:<15} {m['reason']}" for m in r["mode_changes"]]
    lines += ["", "  gate: " + ("PASS" if not r["broken"] else f"FAIL ({len(r['broken'])} broken)")]
    return "\n".join(lines)


def format_mb(mb: float) -> str:
    return f"{mb:,.0f}" if mb >= 10 else f"{mb:.2g}"


def _log_feed_line(r: dict) -> str:
    size = format_mb(r["log_input_mb"])
    if r["log_feed"] == "preloaded":
        return (f"  log feed: preloaded before the run: {r['messages_fed']} inputs, {size} MB "
                f"(--log-preload-mb {r['log_preload_mb']:g})")
    return (f"  log feed: streamed during the run, decoding alongside the loop: {r['messages_fed']} inputs, "
            f"{size} MB (--log-preload-mb {r['log_preload_mb']:g}), the loop waited "
            f"{r['log_feed_wait_s']:.3f} s for inputs")


def _cell(v) -> str:
    if v is None:
        return "none"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
