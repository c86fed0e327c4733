"""`rtdrive eval-tracker`: multi-object tracking and ego-state accuracy over closed-loop runs.

Each (scenario, seed) runs the full closed loop. A scheduler listener sees every delivered
``/fusion/tracks`` and ``/fusion/ego`` message and reads the world's ground truth at that instant
(the delivery time equals the data time in ideal mode).
Tracks are scored against the actors a detector of the stack can report: with simulated sensors,
those inside some sensor's detector coverage (the lidar detector's bird's-eye-view grid, the
radar's and camera's fields of view and ranges) that the sensor returned enough points of
recently (``--truth visible``), or every actor inside that coverage (``--truth coverage``); with
the oracle, its radius around the ego. motmetrics scores them: a track and an actor match when
their centres are within ``--match-m`` metres; a track on an unscored actor is ignored, neither
hit nor false positive (the MOTChallenge rule for ignored ground truth). The consistency figures are
averages: NEES of matched tracks over (x, y, vx, vy) against the truth (ideal 4), and the tracker's
own 2-dof position NIS of the updates of that cycle (ideal 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import motmetrics as mm
import numpy as np

from core.messages import Tracks
from fusion.frames import ego_pose_at
from runtime.perception_modes import DEFAULT_PERCEPTION, PERCEPTION_MODES

DEFAULT_SCENARIOS = ("cut_in", "curve", "free_road", "lead_brake", "stopped_vehicle")
DEFAULT_SEEDS = "100..104"  # held out: development and tuning use seeds below 100


def _without_ignored(tracks: Tracks, scored_xy: np.ndarray, ignored_xy: np.ndarray,
                     match_m: float) -> Tracks:
    """``tracks`` less those on an unscored actor: the MOTChallenge treatment of ignored ground
    truth (a hypothesis matched to it is neither a hit nor a false positive). A track within
    ``match_m`` of an unscored actor and of no scored one is dropped, so a car a detector still
    reports at the edge of its coverage, where too few returns make it unscored, costs nothing."""
    if ignored_xy.shape[0] == 0 or tracks.ids.shape[0] == 0:
        return tracks
    tr = tracks.states[:, :2]

    def near(xy: np.ndarray) -> np.ndarray:
        if xy.shape[0] == 0:
            return np.zeros(tr.shape[0], bool)
        return (np.hypot(tr[:, None, 0] - xy[None, :, 0], tr[:, None, 1] - xy[None, :, 1]) <= match_m).any(axis=1)

    keep = ~(near(ignored_xy) & ~near(scored_xy))
    if keep.all():
        return tracks
    return Tracks(tracks.t_ns, tracks.ids[keep], tracks.states[keep], tracks.covariances[keep],
                  tracks.yaws[keep], tracks.sizes[keep], tracks.labels[keep], tracks.existence[keep])


@dataclass(slots=True)
class _RunAccumulator:
    """Per-run collector fed by the scheduler listener (not a stage: mutable by design)."""

    match_m: float
    coverage_m: float
    acc: mm.MOTAccumulator = field(default_factory=lambda: mm.MOTAccumulator(auto_id=True))
    ego_sq_err: list[float] = field(default_factory=list)
    nees: list[np.ndarray] = field(default_factory=list)
    nis: list[np.ndarray] = field(default_factory=list)

    def on_tracks(self, tracks: Tracks, ego_xy: np.ndarray, ids: np.ndarray, xy: np.ndarray,
                  vel: np.ndarray, fresh_nis: np.ndarray, inside: np.ndarray | None = None) -> None:
        """``inside`` (N,): the actors the sensors cover; None: those within ``coverage_m``."""
        if inside is None:
            inside = np.hypot(xy[:, 0] - ego_xy[0], xy[:, 1] - ego_xy[1]) <= self.coverage_m
        tracks = _without_ignored(tracks, xy[inside], xy[~inside], self.match_m)
        gt_ids, gt_xy, gt_vel = ids[inside], xy[inside], vel[inside]
        tr_xy = tracks.states[:, :2]
        dist = np.hypot(gt_xy[:, None, 0] - tr_xy[None, :, 0], gt_xy[:, None, 1] - tr_xy[None, :, 1])
        dist = np.where(dist <= self.match_m, dist, np.nan)
        frame = self.acc.update(gt_ids.tolist(), tracks.ids.tolist(), dist)
        self.nis.append(fresh_nis[np.isfinite(fresh_nis)])
        if gt_ids.size == 0 or tracks.ids.size == 0:
            return  # nothing to match (motmetrics records no event row for an empty frame)
        events = self.acc.mot_events.loc[frame]
        matched = events[events.Type.isin(("MATCH", "SWITCH"))]
        if len(matched):
            gt_row = {int(o): k for k, o in enumerate(gt_ids)}
            tr_row = {int(h): k for k, h in enumerate(tracks.ids)}
            g = np.array([gt_row[int(o)] for o in matched.OId])
            t = np.array([tr_row[int(h)] for h in matched.HId])
            e = np.concatenate([gt_xy[g], gt_vel[g]], axis=1) - tracks.states[t]
            p = tracks.covariances[t]
            self.nees.append(np.einsum("ni,ni->n", e, np.linalg.solve(p, e[..., None])[..., 0]))

    def on_ego(self, est_xy: np.ndarray, truth_xy: np.ndarray) -> None:
        self.ego_sq_err.append(float(np.sum((np.asarray(est_xy) - truth_xy) ** 2)))


@dataclass(frozen=True, slots=True)
class Coverage:
    """Where the object detectors of a run can report an object: per sensor a mount (vehicle
    frame), a heading, a half field of view and a range; for the lidar, whose detector sees only
    its bird's-eye-view grid, that grid's rectangle (vehicle frame) when one is given. With no
    sensors (oracle runs) the oracle's radius serves instead (see ``_RunAccumulator``)."""

    names: tuple[str, ...]
    mounts_xy_m: np.ndarray  # (S, 2)
    yaws_rad: np.ndarray  # (S,)
    half_fov_rad: np.ndarray  # (S,)
    ranges_m: np.ndarray  # (S,)
    # (S, 4) x_min, x_max, y_min, y_max in the vehicle frame; +-inf where the sector alone applies.
    rects_m: np.ndarray

    @staticmethod
    def of_rig(rig_cfg, names: tuple[str, ...] = ("lidar", "radar", "camera"),
               lidar_grid=None) -> "Coverage":
        """``lidar_grid`` (a ``BevGridConfig``): limit the lidar to its detector's grid. Without
        it the lidar covers its full 360-degree range, points the detector never sees included."""
        rows, rects, kept = [], [], []
        for name in names:
            if name not in rig_cfg.enabled:
                continue
            sc = rig_cfg.sensor(name)
            half = np.pi if name == "lidar" else 0.5 * np.radians(float(sc.hfov_deg))
            rows.append((sc.x_m, sc.y_m, sc.yaw_rad, half, sc.max_range_m))
            g = lidar_grid if name == "lidar" else None
            rects.append((g.x_min_m, g.x_max_m, g.y_min_m, g.y_max_m) if g is not None
                         else (-np.inf, np.inf, -np.inf, np.inf))
            kept.append(name)
        a = np.array(rows, dtype=np.float64).reshape(-1, 5)
        return Coverage(tuple(kept), a[:, :2], a[:, 2], a[:, 3], a[:, 4],
                        np.array(rects, dtype=np.float64).reshape(-1, 4))

    def inside_by_sensor(self, ego_pose: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """(N, S): whether each map point lies where sensor s's detector can report it."""
        c, s = np.cos(ego_pose[2]), np.sin(ego_pose[2])
        d = xy - ego_pose[:2]
        local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
        rel = local[:, None, :] - self.mounts_xy_m[None]  # (N, S, 2)
        rng_m = np.hypot(rel[..., 0], rel[..., 1])
        bearing = np.angle(np.exp(1j * (np.arctan2(rel[..., 1], rel[..., 0]) - self.yaws_rad[None])))
        in_rect = ((local[:, None, 0] >= self.rects_m[None, :, 0]) & (local[:, None, 0] <= self.rects_m[None, :, 1])
                   & (local[:, None, 1] >= self.rects_m[None, :, 2]) & (local[:, None, 1] <= self.rects_m[None, :, 3]))
        return (rng_m <= self.ranges_m[None]) & (np.abs(bearing) <= self.half_fov_rad[None]) & in_rect

    def inside(self, ego_pose: np.ndarray, xy: np.ndarray) -> np.ndarray:
        return self.inside_by_sensor(ego_pose, xy).any(axis=1)


# An actor is trackable while a sensor that can confirm a track returned enough of it recently,
# inside that sensor's detector coverage: the nuScenes convention (boxes without lidar or radar
# points are not scored), since no tracker can report what no detector measured. Camera pixels
# alone do not count (the camera confirms nothing alone).
VISIBLE_MIN_POINTS = {"lidar": 5, "radar": 2}
VISIBLE_HOLD_NS = 500_000_000


@dataclass(slots=True)
class Visibility:
    """Per sensor, the last capture time at which each actor had enough returns (mutable
    evaluation bookkeeping)."""

    last_seen_ns: dict[str, dict[int, int]] = field(default_factory=dict)

    def on_capture(self, sensor: str, capture_ns: int, truth) -> None:
        need = VISIBLE_MIN_POINTS.get(sensor)
        if need is None or truth is None:
            return
        seen = self.last_seen_ns.setdefault(sensor, {})
        ids, counts = np.unique(truth.point_ids[truth.point_ids >= 0], return_counts=True)
        for actor in ids[counts >= need].tolist():
            seen[actor] = max(seen.get(actor, capture_ns), capture_ns)

    def mask_by_sensor(self, ids: np.ndarray, t_ns: int, names: tuple[str, ...]) -> np.ndarray:
        """(N, S): actor seen by sensor ``names[s]`` within the hold time."""
        out = np.zeros((ids.shape[0], len(names)), bool)
        for k, name in enumerate(names):
            seen = self.last_seen_ns.get(name, {})
            last = np.array([seen.get(int(i), -(1 << 62)) for i in ids], dtype=np.int64)
            out[:, k] = (t_ns - last) <= VISIBLE_HOLD_NS
        return out

    def mask(self, ids: np.ndarray, t_ns: int) -> np.ndarray:
        """Actor seen by any counted sensor within the hold time."""
        return self.mask_by_sensor(ids, t_ns, tuple(VISIBLE_MIN_POINTS)).any(axis=1)


def parse_seeds(text: str) -> list[int]:
    """``A..B`` (inclusive), ``A,B,C`` or a single integer; each seed >= 0 and named once."""
    try:
        if ".." in text:
            lo, hi = (int(v) for v in text.split("..", 1))
            if hi < lo:
                raise ValueError
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds: {text!r} is not A..B (A <= B), A,B,C or an integer") from None
    if min(seeds) < 0:  # the world's and numpy's generators take no negative seed
        raise ValueError(f"--seeds: {min(seeds)} is out of range; allowed >= 0")
    # Refused, not merged: a seed is a deterministic run, so a repeat only weighs it twice in OVERALL,
    # and "100,101,101" more likely meant another seed than the same one again.
    repeated = sorted(seed for seed, n in Counter(seeds).items() if n > 1)
    if repeated:
        raise ValueError(f"--seeds: {text!r} names seed {repeated[0]} more than once; each seed is one run "
                         "and counts once in OVERALL")
    return seeds


def evaluate_run(scenario_name: str, seed: int, perception: str, match_m: float,
                 duration_s: float | None = None, truth: str = "visible") -> tuple[_RunAccumulator, dict]:
    """``truth``: with simulated sensors, score the actors inside the sensors' coverage that they
    returned points of recently ("visible") or every actor inside the coverage ("coverage")."""
    from runtime.closed_loop import ClosedLoop, RunOptions
    from sim.scenario import load_scenario

    scenario = load_scenario(scenario_name)
    loop = ClosedLoop(scenario, RunOptions(seed=seed, perception=perception, duration_s=duration_s))
    run = _RunAccumulator(match_m=match_m, coverage_m=float(scenario.oracle.range_m))
    # With simulated sensors, the truth to track is what they cover, not the oracle's radius.
    coverage = (Coverage.of_rig(scenario.sensors, lidar_grid=loop.stack_cfg.perception.lidar.grid)
                if loop.rig is not None else None)
    visibility = Visibility() if coverage is not None and truth == "visible" else None
    if visibility is not None:
        capture = loop.rig.capture

        def capture_and_note(sensor, t_capture_ns, ego, actors):
            arrivals = capture(sensor, t_capture_ns, ego, actors)
            for a in arrivals:
                visibility.on_capture(sensor, a.capture_ns, a.truth)
            return arrivals

        loop.rig.capture = capture_and_note  # the evaluation observes the labelled truth, nothing else

    def listener(t_ns: int, topic: str, msg) -> None:
        if topic == "/fusion/tracks":
            ego, actors = loop.world.ego_truth(), loop.world.actors_truth()
            state = _tracker_state(loop.stack)
            fresh = state.last_hit_ns == state.t_ns if state.t_ns is not None else np.zeros(0, bool)
            inside = None
            if coverage is not None:
                by_sensor = coverage.inside_by_sensor(ego.pose, actors.xy_m)
                if visibility is not None:
                    # Scored where a sensor both covers the actor and returned enough of it.
                    by_sensor = by_sensor & visibility.mask_by_sensor(actors.ids, t_ns, coverage.names)
                inside = by_sensor.any(axis=1)
            run.on_tracks(msg, ego.pose[:2], actors.ids, actors.xy_m, actors.velocity_mps,
                          state.last_nis[fresh], inside)
        elif topic == "/fusion/ego":
            # The estimate refers to its own t_ns; the truth is now: move the estimate to now.
            run.on_ego(ego_pose_at(msg, t_ns)[:2], loop.world.ego_truth().pose[:2])

    loop.scheduler.add_listener(listener)
    loop.run()
    return run, {"scenario": scenario_name, "seed": seed}


def _tracker_state(stack):
    """The tracker state inside the stack's fusion stage (older stacks held it directly)."""
    fusion = getattr(stack, "fusion_state", None)
    return fusion.tracker if fusion is not None else stack.tracker_state


def _mean(chunks: list[np.ndarray]) -> float:
    values = np.concatenate(chunks) if chunks else np.zeros(0)
    return float(values.mean()) if values.size else float("nan")


def _shown(value, spec: str = "") -> str:
    """A metric in the table and the progress lines: None (undefined) is n/a."""
    return "n/a" if value is None else format(value, spec)


def summarise(runs: list[_RunAccumulator]) -> dict:
    mh = mm.metrics.create()
    names = [f"run{k}" for k in range(len(runs))]
    table = mh.compute_many([r.acc for r in runs], names=names, generate_overall=True,
                            metrics=["mota", "motp", "idf1", "num_switches", "num_false_positives",
                                     "num_misses", "num_objects", "num_matches"])
    overall = table.loc["OVERALL"]
    ego_sq = np.concatenate([np.asarray(r.ego_sq_err) for r in runs]) if runs else np.zeros(0)

    def num(v) -> float | None:
        # Undefined (no matches for MOTP, no objects for MOTA and IDF1, no ego or no updates):
        # None, which JSON writes as null; NaN is no JSON.
        return round(float(v), 4) if np.isfinite(v) else None

    return {
        "mota": num(overall["mota"]), "motp": num(overall["motp"]), "idf1": num(overall["idf1"]),
        "id_switches": int(overall["num_switches"]),
        "false_positives": int(overall["num_false_positives"]), "misses": int(overall["num_misses"]),
        "objects": int(overall["num_objects"]), "matches": int(overall["num_matches"]),
        "ego_rmse_m": num(np.sqrt(ego_sq.mean())) if ego_sq.size else None,
        "nees": num(_mean([c for r in runs for c in r.nees])),
        "nis": num(_mean([c for r in runs for c in r.nis])),
        "nees_dof": 4, "nis_dof": 2,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtdrive eval-tracker",
                                description="Tracking (MOTA, MOTP, IDF1, ID switches) and ego accuracy "
                                            "over closed-loop runs on held-out seeds.")
    p.add_argument("--scenario", action="append", default=None,
                   help=f"built-in name or TOML path; repeatable (default: {', '.join(DEFAULT_SCENARIOS)})")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help=f"A..B, A,B,C or N (default {DEFAULT_SEEDS})")
    p.add_argument("--perception", choices=PERCEPTION_MODES, default=DEFAULT_PERCEPTION,
                   help="onnx: the full stack (default); classical: the same without networks "
                        "(classical lidar boxes, radar clustering); oracle: ground-truth objects, "
                        "no sensors")
    p.add_argument("--match-m", type=float, default=2.0, help="track-to-actor match distance (default 2 m)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="seconds per run")
    p.add_argument("--truth", choices=("visible", "coverage"), default="visible",
                   help="with sensors: score actors inside a detector's coverage with recent "
                        "lidar/radar returns there (visible, default) or every actor inside that "
                        "coverage (coverage)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def eval_tracker_main(argv: list[str] | None) -> int:
    from runtime.errors import UsageError, check_run_options, warn_late_faults
    from sim.scenario import load_scenario

    args = build_parser().parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        if not (0.0 < args.match_m <= 20.0):
            raise ValueError(f"--match-m: {args.match_m} is out of range; allowed (0, 20] m")
        # The closed-loop options as `rtdrive sim` checks them (--duration 0 or nan); parse_seeds
        # refused a negative seed naming --seeds, the option this command has.
        check_run_options(args.duration)
        scenarios = args.scenario or list(DEFAULT_SCENARIOS)
        # All of them before the first run: a typo must not cost the runs before it; and the
        # warnings only once no error will stop the evaluation.
        for scenario in [load_scenario(name) for name in scenarios]:
            warn_late_faults("eval-tracker", scenario, args.duration)
        runs, per_run = [], []
        n_runs, wall_start = len(scenarios) * len(seeds), time.perf_counter()
        for name in scenarios:
            for seed in seeds:
                run, info = evaluate_run(name, seed, args.perception, args.match_m, args.duration,
                                         args.truth)
                runs.append(run)
                per_run.append({**info, **summarise([run])})
                # A full-stack evaluation takes minutes: one line per run on stderr, stdout stays
                # the result alone (one JSON object with --json).
                print(f"  eval-tracker: run {len(runs)}/{n_runs} {name} seed {seed}: "
                      f"mota {_shown(per_run[-1]['mota'], '.3f')}, idf1 {_shown(per_run[-1]['idf1'], '.3f')} "
                      f"({time.perf_counter() - wall_start:.0f} s so far)",
                      file=sys.stderr, flush=True)
    except (ValueError, FileNotFoundError, KeyError, UsageError) as exc:
        print(f"rtdrive eval-tracker: error: {exc}", file=sys.stderr)
        return 2
    result = {**summarise(runs), "perception": args.perception, "truth": args.truth, "scenarios": scenarios,
              "seeds": seeds, "runs": per_run}
    if args.json:
        print(json.dumps(result, sort_keys=True, allow_nan=False))
    else:
        keys = ("mota", "motp", "idf1", "id_switches", "ego_rmse_m", "nees", "nis")
        print(f"{'scenario':<20}{'seed':>6}" + "".join(f"{k:>12}" for k in keys))
        for r in per_run + [{"scenario": "OVERALL", "seed": "", **result}]:
            print(f"{r['scenario']:<20}{r['seed']!s:>6}" + "".join(f"{_shown(r[k]):>12}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(eval_tracker_main(sys.argv[1:]))
