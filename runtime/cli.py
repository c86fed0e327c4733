"""The `rtdrive` command line.

Exit codes: 0 success; 1 a run completed but failed its gate (e.g. collisions with
--fail-on-collision, leaving the road with --fail-on-off-road, a timing budget broken); 2 bad usage
or bad input (unknown scenario, malformed file, bad fault spec); 130 interrupted (Ctrl-C, also
inside an import), with one line saying where.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.config import ConfigError
from runtime.errors import UsageError, check_output_paths, check_run_options, warn_late_faults
from runtime.host_probe import DEFAULT_PROBE_SECONDS
from runtime.perception_modes import DEFAULT_PERCEPTION, PERCEPTION_MODES
from sim.faults import FaultSpecError, check_fault_windows, parse_faults


def _add_sim(sub) -> None:
    p = sub.add_parser("sim", help="run a closed-loop scenario with the full stack and print its summary",
                       description="Run a closed-loop scenario: the sim world feeds the stack on the "
                                   "scheduler's simulated clock; prints a summary (or JSON).")
    p.add_argument("--scenario", default="cut_in", help="built-in name (see `rtdrive scenarios`) or a TOML path")
    p.add_argument("--seed", type=int, default=0, help="seed of traffic and sensor noise (default 0)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="seconds (default: the scenario's)")
    p.add_argument("--mode", choices=("ideal", "latency"), default="ideal",
                   help="ideal: compute time recorded only; latency: outputs delayed by measured compute time")
    p.add_argument("--perception", choices=PERCEPTION_MODES, default=DEFAULT_PERCEPTION,
                   help="object perception: onnx (the full stack: lidar and camera networks, radar), "
                        "classical (lidar clustering, radar), oracle (ground truth with noise: planning in isolation)")
    p.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="auto",
                   help="onnxruntime provider: auto = CUDA when usable, else CPU, reported in the JSON")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per model (default 1)")
    p.add_argument("--sensors", action=argparse.BooleanOptionalAction, default=None,
                   help="simulate camera, lidar, radar, IMU, wheel and GNSS and localise with the ego EKF "
                        "(default: on when the perception mode needs them)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault: SENSOR:KIND[=VALUE][@START[-END]] (seconds), e.g. lidar:dropout@5, "
                        "radar:delay=0.3@2-4, camera:nan=0.01@3; repeatable")
    p.add_argument("--config", type=Path, default=None, help="stack config TOML overriding the defaults")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--fail-on-collision", action="store_true",
                   help="exit 1 when the run had a collision; leaving the road is no collision and does not "
                        "count here (see --fail-on-off-road)")
    p.add_argument("--fail-on-off-road", action="store_true",
                   help="exit 1 when any corner of the ego's footprint left the paved road (off_road_s > 0)")
    from runtime.cli_args import record_args
    record_args(p)


def _cmd_sim(args) -> int:
    from runtime.closed_loop import ClosedLoop, RunOptions
    from runtime.stack_config import StackConfig, load_stack_config
    from runtime.summary import format_summary
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    stack_cfg = load_stack_config(args.config) if args.config else StackConfig()
    check_run_options(args.duration, args.seed, args.threads)
    # A --fault is asked for on this very command line, so one that starts after the run is a
    # contradiction: refused. The scenario file's faults were written for its own duration, and a
    # --duration that cuts it short may leave its late faults out on purpose: a warning each.
    check_fault_windows(parse_faults(args.fault), args.duration if args.duration is not None else scenario.duration_s)
    opts = RunOptions(seed=args.seed, duration_s=args.duration, mode=args.mode, perception=args.perception,
                      sensors=args.sensors, faults=tuple(args.fault), provider=args.provider,
                      threads=args.threads, progress=sys.stderr)
    from runtime.record import recording
    loop = ClosedLoop(scenario, opts, stack_cfg)
    try:
        recorder = recording(loop, args.record, args.config)
    except OSError as exc:  # the file's opening only: an OSError during the run is no usage error
        raise UsageError(f"--record {args.record}: cannot write: {exc.strerror or exc}") from None
    warn_late_faults("sim", scenario, args.duration)  # here, once no usage error can stop the run
    try:
        with recorder:
            summary = loop.run()
    except KeyboardInterrupt:
        from runtime.record import interrupted
        raise KeyboardInterrupt(interrupted(loop, recorder)) from None
    print(json.dumps(summary, sort_keys=True) if args.json else format_summary(summary))
    failed = (args.fail_on_collision and summary["collisions"]) or (args.fail_on_off_road and summary["off_road_s"] > 0)
    return 1 if failed else 0


def _cmd_scenarios(args) -> int:
    from sim.scenario import list_scenarios

    rows = list_scenarios()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="run benchmarks (median and p99 per benchmark)",
                       description="Time the named benchmarks (all when none is named).")
    p.add_argument("names", nargs="*", help="benchmark names (default: all); `--list` shows them")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per benchmark, >= 1 (default: per benchmark)")
    p.add_argument("--json", action="store_true", help="print {name: {median_ms, p99_ms, n, ...}}")
    p.add_argument("--host-probe", type=float, default=DEFAULT_PROBE_SECONDS, metavar="S",
                   help="seconds of host probe before and after each benchmark, reported as host_lost_pct "
                        "and host_max_gap_ms (default %(default)s; 0: no probe)")
    p.add_argument("--passes", type=int, default=0, metavar="K",
                   help="also time K passes (>= 2) over the input cycle of each benchmark that replays a "
                        "fixed sequence and report the median and p99 of each input's fastest time "
                        "(min_of_passes_*): the code's own costs, with the host's pauses filtered out "
                        "(default 0: off)")


def _cmd_bench(args) -> int:
    from runtime.bench import all_benchmarks, format_results, run_benchmarks

    registry = all_benchmarks()
    if args.list:
        for name in sorted(registry):
            print(name)
        return 0
    unknown = [n for n in args.names if n not in registry]
    if unknown:
        raise UsageError(f"unknown benchmark {unknown[0]!r}; available: {', '.join(sorted(registry))}")
    if not 0.0 <= args.host_probe <= 10.0:
        raise UsageError(f"--host-probe: {args.host_probe} is out of range; allowed [0, 10] seconds")
    if args.passes == 1 or not 0 <= args.passes <= 100:
        raise UsageError(f"--passes: {args.passes}; allowed 0 (off) or 2 to 100")
    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"--repeat: {args.repeat} is out of range; allowed >= 1")
    results = run_benchmarks(registry, args.names or sorted(registry), args.repeat, progress=sys.stderr,
                             host_probe_s=args.host_probe, passes=args.passes)
    print(json.dumps(results, sort_keys=True, indent=1) if args.json else format_results(results))
    return 0


def _add_snapshot(sub) -> None:
    p = sub.add_parser("snapshot", help="write the camera image and a bird's-eye view as PNG",
                       description="Step a scenario to time T and write camera.png, camera_boxes.png "
                                   "(ground-truth 2D boxes) and bev.png (lidar, radar, ground truth).")
    p.add_argument("--scenario", default="cut_in", help="built-in name or a TOML path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t", type=float, default=5.0, metavar="S", help="time of the snapshot [s] (default 5)")
    p.add_argument("-o", "--out", type=Path, default=Path("snapshot"), metavar="DIR", help="output folder")


def _cmd_snapshot(args) -> int:
    from sim.scenario import load_scenario
    from sim.snapshot import write_snapshot

    scenario = load_scenario(args.scenario)
    check_run_options(seed=args.seed)
    if not (0.0 <= args.t <= scenario.duration_s):
        raise UsageError(f"--t: {args.t} is outside the scenario's [0, {scenario.duration_s}] s")
    check_output_paths(folders={"-o": args.out})  # before the world is stepped to --t
    for name, path in write_snapshot(scenario, args.seed, args.t, args.out, scenario.sensors).items():
        print(f"{name:<14}{path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtdrive", description="rtdrive: a real-time driving stack. "
                                     "Closed-loop simulation, log replay and deadline timing on one loop.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sim(sub)
    sub.add_parser("scenarios", help="list the built-in scenarios")
    _add_bench(sub)
    _add_snapshot(sub)
    _add_replay(sub)
    _add_view(sub)
    _add_timing(sub)
    for name, help_text in DELEGATED_HELP.items():
        # These commands parse their own options (`rtdrive NAME --help` shows them).
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


DELEGATED_HELP = {
    "train": "generate labelled frames from seeded scenarios and train a detector (needs the [train] extra)",
    "eval-detector": "average precision and latency of a detector on held-out seeds",
    "eval-tracker": "MOTA, MOTP, IDF1, ID switches, ego RMSE, NEES/NIS over closed-loop runs",
}


def _run_delegated(command: str, argv: list[str]) -> int:
    if command == "train":
        from runtime.train_cli import train_main
        return train_main(argv)
    if command == "eval-detector":
        from runtime.eval_detector import eval_main
        return eval_main(argv)
    from runtime.eval_tracker import eval_tracker_main
    return eval_tracker_main(argv)


def _add_view(sub) -> None:
    from runtime.cli_args import view_args
    view_args(sub.add_parser("view", help="render a recorded run: bird's-eye view and timelines (mp4, gif, png)",
                             description="Render a recorded log headless: road, ego, ground truth, detections, "
                                         "tracks, plan and mode, plus speed, acceleration, mode and stage-time "
                                         "timelines."))


def _cmd_view(args) -> int:
    from runtime.view import view_main
    return view_main(args)


def _add_replay(sub) -> None:
    from runtime.cli_args import replay_args
    replay_args(sub.add_parser("replay", help="replay a recorded MCAP log through the stack (--check: bit-exact)",
                               description="Feed a recorded log's inputs through the same stack on the log's "
                                           "clock; --check compares every stage output with the recording."))


def _cmd_replay(args) -> int:
    from runtime.replay import replay_main
    return replay_main(args)


def _add_timing(sub) -> None:
    from runtime.timing_cli import add_timing
    add_timing(sub)


def _cmd_timing(args) -> int:
    from runtime.timing_cli import cmd_timing
    return cmd_timing(args)


COMMANDS = {"sim": _cmd_sim, "scenarios": _cmd_scenarios, "bench": _cmd_bench, "snapshot": _cmd_snapshot,
            "replay": _cmd_replay, "view": _cmd_view, "timing": _cmd_timing}


def _user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that are the user's input, not a bug: one line on stderr, exit code 2."""
    from perception.contract import ModelContractError
    from perception.onnx_model import ModelFileMissingError, ModelLoadError, ProviderUnavailableError
    return (ConfigError, UsageError, FaultSpecError, ModelFileMissingError, ModelLoadError, ModelContractError,
            ProviderUnavailableError)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether Ctrl-C is behind ``exc``: an interrupt that lands inside an import of a compiled
    module (open3d, onnxruntime) comes out as that module's ImportError, caused by it."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED_HELP:  # listed in --help, parsed by their own modules
        try:
            return _run_delegated(argv[0], argv[1:])
        except _user_errors() as exc:
            print(f"rtdrive {argv[0]}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # as below: train and the evaluations stop with one line too
            print(f"rtdrive {argv[0]}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            if not _caused_by_interrupt(exc):
                raise
            print(f"rtdrive {argv[0]}: interrupted", file=sys.stderr)
            return 130
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except _user_errors() as exc:
        print(f"rtdrive {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, exit 130 (128 + SIGINT) as a shell reports it
        print(f"rtdrive {args.command}: {exc.args[0] if exc.args else 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:
        if not _caused_by_interrupt(exc):
            raise
        print(f"rtdrive {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
