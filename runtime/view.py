"""`rtdrive view`: a picture of a recorded run, rendered headless with OpenCV.

Each frame: a bird's-eye view that follows the ego (road and lane lines, ground-truth actors in
grey, the object detections fed to fusion in orange, fused tracks in cyan with their ids, the chosen
plan in green, the ego in white, the safety mode as a banner) above four timelines for the whole run
(true speed, true acceleration, safety mode, per-stage compute time) with a cursor at the frame's time.

Outputs by suffix: .mp4 (cv2.VideoWriter, mp4v), .gif (Pillow), .png (one frame, at ``--at``).

The log is read for the topics drawn (``drawn_topic``) and no others: the raw sensor messages
(camera images, lidar sweeps, radar scans, IMU, wheel, GNSS), nearly all of a run's bytes, are
passed over undecoded, though every chunk's CRC is still checked (damage there is an error, or the
cut of ``--salvage``); a message of a topic not drawn that fails to decode is no damage to the view.
Before, every message was decoded and held: ~195 MB for a 4 s full-stack run (peak RSS 640 MB),
growing with the run's length; now ~15 MB. (Peak RSS of the whole command, since the CLI stopped
importing the stack to build its parser: 253 MB for a 6 s log with the simulated sensors.)
"""
from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.config import from_mapping
from core.geometry import box_corners_2d, se2_to_map
from core.messages import Detections3D, Mode
from core.road import Road
from runtime.errors import UsageError
from sim.scenario import ScenarioConfig, build_road

W_PX, BEV_H_PX, STRIP_H_PX = 960, 300, 80
PX_PER_M = 9.0
AHEAD_M = 0.6 * W_PX / PX_PER_M  # the ego sits at 40% of the width, looking right
MODE_BGR = {Mode.NOMINAL: (80, 170, 60), Mode.DEGRADED: (0, 190, 230), Mode.MINIMAL_RISK: (0, 120, 255),
            Mode.EMERGENCY_STOP: (40, 40, 220)}
STAGE_BGR = [(255, 160, 60), (80, 200, 80), (60, 60, 230), (200, 80, 200), (40, 180, 220), (160, 160, 160)]


@dataclass(frozen=True, slots=True)
class _Stream:
    """One topic's messages with their delivery times, for latest-before lookups."""

    times_ns: list[int]
    msgs: list[object]

    def at(self, t_ns: int) -> object | None:
        i = bisect_right(self.times_ns, t_ns) - 1
        return self.msgs[i] if i >= 0 else None


_DRAWN_TOPICS = frozenset({"/truth/ego", "/truth/actors", "/sensors/oracle", "/fusion/tracks", "/planning/plan",
                           "/safety/status"})
_DRAWN_PREFIXES = ("/perception/", "/timing/")


def drawn_topic(topic: str) -> bool:
    """Whether the view draws ``topic``: ground truth, the object detections fed to fusion (the
    oracle's and perception's), tracks, the plan, the safety status and the stage timings."""
    return topic in _DRAWN_TOPICS or topic.startswith(_DRAWN_PREFIXES)


class RunView:
    def __init__(self, messages, metadata: dict[str, str]) -> None:
        """``messages``: a log's messages in arrival order; those of topics not drawn are ignored."""
        if "scenario_json" not in metadata:
            raise UsageError("the log carries no scenario (recorded elsewhere?): the view needs the road")
        scenario = from_mapping(ScenarioConfig, json.loads(metadata["scenario_json"]), "<log metadata>")
        self.title = f"{scenario.name}  seed {metadata.get('seed', '?')}"
        self.road: Road = build_road(scenario.road)
        by_topic: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for m in messages:
            if not drawn_topic(m.topic):
                continue
            times, msgs = by_topic[m.topic]
            times.append(m.arrival_ns)
            msgs.append(m.msg)
        self.streams = {t: _Stream(*v) for t, v in by_topic.items()}
        truth = self.streams.get("/truth/ego")
        if truth is None or not truth.msgs:
            raise UsageError("the log holds no /truth/ego: record it with `rtdrive sim --record`")
        self.truth_times_ns = np.array(truth.times_ns, dtype=np.int64)
        self.detection_topics = sorted(t for t in self.streams if t == "/sensors/oracle" or t.startswith("/perception/"))
        self._road_lines = self._sample_road()
        self._timelines = self._draw_timelines()

    # -- static parts ------------------------------------------------------------------------------
    def _sample_road(self) -> list[tuple[np.ndarray, bool]]:
        s = np.arange(0.0, self.road.length_m, 1.0)
        lines = []
        half = self.road.half_width_m
        for k in range(self.road.num_lanes + 1):
            d = -half + k * self.road.lane_width_m
            xy, _ = self.road.to_cartesian(s, np.full_like(s, d))
            lines.append((np.asarray(xy), k in (0, self.road.num_lanes)))
        return lines

    def _draw_timelines(self) -> np.ndarray:
        truth = self.streams["/truth/ego"].msgs
        t0, t1 = int(self.truth_times_ns[0]), int(self.truth_times_ns[-1])
        img = np.full((4 * STRIP_H_PX, W_PX, 3), 24, np.uint8)
        x_of = lambda t: ((np.asarray(t, dtype=np.float64) - t0) / max(t1 - t0, 1) * (W_PX - 90) + 80)  # noqa: E731
        self._x_of = x_of
        speed = np.array([e.speed_mps for e in truth])
        accel = np.array([e.accel_mps2 for e in truth])
        self._plot(img, 0, "speed m/s", x_of(self.truth_times_ns), speed, (255, 255, 255))
        self._plot(img, 1, "accel m/s2", x_of(self.truth_times_ns), accel, (200, 200, 255))
        status = self.streams.get("/safety/status")
        y0 = 2 * STRIP_H_PX
        cv2.putText(img, "mode", (4, y0 + 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1)
        if status is not None:
            xs = x_of(status.times_ns).astype(int)
            modes = [Mode(s.mode) for s in status.msgs]
            for i, mode in enumerate(modes):
                x_end = xs[i + 1] if i + 1 < len(xs) else W_PX - 10
                cv2.rectangle(img, (int(xs[i]), y0 + 15), (int(x_end), y0 + STRIP_H_PX - 15), MODE_BGR[mode], -1)
        y0 = 3 * STRIP_H_PX
        cv2.putText(img, "stage ms", (4, y0 + 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1)
        timing_topics = sorted(t for t in self.streams if t.startswith("/timing/"))
        peak_ms = max((max(m.duration_ns for m in self.streams[t].msgs) for t in timing_topics), default=1) / 1e6
        for i, topic in enumerate(timing_topics):
            s = self.streams[topic]
            ms = np.array([m.duration_ns for m in s.msgs]) / 1e6
            color = STAGE_BGR[i % len(STAGE_BGR)]
            self._plot(img, 3, None, x_of(s.times_ns), ms, color, lo=0.0, hi=max(peak_ms, 1e-3))
            cv2.putText(img, topic[len("/timing/"):], (W_PX - 95, y0 + 12 + 11 * i), cv2.FONT_HERSHEY_SIMPLEX,
                        0.33, color, 1)
        cv2.putText(img, f"max {peak_ms:.2f}", (4, y0 + 60), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (180, 180, 180), 1)
        return img

    @staticmethod
    def _plot(img, row: int, label: str | None, xs: np.ndarray, ys: np.ndarray, color, lo=None, hi=None) -> None:
        y0 = row * STRIP_H_PX
        cv2.line(img, (80, y0 + STRIP_H_PX - 1), (W_PX - 10, y0 + STRIP_H_PX - 1), (60, 60, 60), 1)
        if ys.size == 0:
            return
        lo = float(np.min(ys)) if lo is None else lo
        hi = float(np.max(ys)) if hi is None else hi
        span = max(hi - lo, 1e-6)
        py = y0 + STRIP_H_PX - 6 - (ys - lo) / span * (STRIP_H_PX - 14)
        pts = np.stack([xs, py], -1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
        if label is not None:
            cv2.putText(img, label, (4, y0 + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1)
            cv2.putText(img, f"{lo:.1f}..{hi:.1f}", (4, y0 + 50), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (180, 180, 180), 1)

    # -- one frame ---------------------------------------------------------------------------------
    def frame(self, t_ns: int) -> np.ndarray:
        ego = self.streams["/truth/ego"].at(t_ns) or self.streams["/truth/ego"].msgs[0]
        origin = np.array([ego.pose[0], ego.pose[1], ego.pose[2]])
        bev = np.full((BEV_H_PX, W_PX, 3), 40, np.uint8)

        def px(xy_map: np.ndarray) -> np.ndarray:
            # Ego-aligned view: x ahead to the right, y left to the top.
            local = _to_local(origin, np.asarray(xy_map, dtype=np.float64).reshape(-1, 2))
            u = 0.4 * W_PX + local[:, 0] * PX_PER_M
            v = 0.5 * BEV_H_PX - local[:, 1] * PX_PER_M
            return np.stack([u, v], -1).round().astype(np.int32)

        for xy, edge in self._road_lines:
            near = np.hypot(xy[:, 0] - origin[0], xy[:, 1] - origin[1]) < 1.5 * AHEAD_M
            if near.any():
                color = (230, 230, 230) if edge else (150, 150, 150)
                cv2.polylines(bev, [px(xy[near])], False, color, 2 if edge else 1, cv2.LINE_AA)
        actors = self.streams.get("/truth/actors")
        a = actors.at(t_ns) if actors else None
        if a is not None and a.ids.size:
            corners = box_corners_2d(a.xy_m, a.length_m, a.width_m, a.yaw_rad)
            cv2.fillPoly(bev, [px(c) for c in corners], (110, 110, 110), cv2.LINE_AA)
        for topic in self.detection_topics:
            det = self.streams[topic].at(t_ns)
            # Camera detections are pixel boxes: they have no place in a bird's-eye view.
            if isinstance(det, Detections3D) and det.boxes.shape[0]:
                b = det.boxes.astype(np.float64)
                local = box_corners_2d(b[:, :2], b[:, 3], b[:, 4], b[:, 6])
                det_pose = self.streams["/truth/ego"].at(det.t_ns) or ego
                corners = se2_to_map(det_pose.pose, local)
                cv2.polylines(bev, [px(c) for c in corners], True, (0, 140, 255), 1, cv2.LINE_AA)
        tracks_stream = self.streams.get("/fusion/tracks")
        tracks = tracks_stream.at(t_ns) if tracks_stream else None
        if tracks is not None and tracks.ids.size:
            corners = box_corners_2d(tracks.states[:, :2], tracks.sizes[:, 0], tracks.sizes[:, 1], tracks.yaws)
            cv2.polylines(bev, [px(c) for c in corners], True, (255, 220, 0), 2, cv2.LINE_AA)
            for tid, p in zip(tracks.ids, px(tracks.states[:, :2])):
                cv2.putText(bev, str(int(tid)), (int(p[0]) + 6, int(p[1]) - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (255, 220, 0), 1)
        plan_stream = self.streams.get("/planning/plan")
        plan = plan_stream.at(t_ns) if plan_stream else None
        if plan is not None and plan.xy_m.shape[0] > 1:
            cv2.polylines(bev, [px(plan.xy_m)], False, (60, 230, 60), 2, cv2.LINE_AA)
        ego_corners = box_corners_2d(ego.center_xy_m, ego.length_m, ego.width_m, ego.pose[2])
        cv2.fillPoly(bev, [px(ego_corners[0])], (255, 255, 255), cv2.LINE_AA)
        self._banner(bev, t_ns, ego, plan)
        strips = self._timelines.copy()
        x = int(self._x_of(t_ns))
        cv2.line(strips, (x, 0), (x, strips.shape[0] - 1), (0, 255, 255), 1)
        return np.vstack([bev, strips])

    def _banner(self, bev: np.ndarray, t_ns: int, ego, plan) -> None:
        status_stream = self.streams.get("/safety/status")
        status = status_stream.at(t_ns) if status_stream else None
        mode = Mode(status.mode) if status is not None else Mode.NOMINAL
        cv2.rectangle(bev, (0, 0), (W_PX, 24), MODE_BGR[mode], -1)
        reason = f" ({status.reason})" if status is not None and status.reason else ""
        behaviour = f"   plan: {plan.behaviour}" if plan is not None and plan.behaviour else ""
        text = f"{self.title}   t={t_ns / 1e9:6.2f} s   {mode.name}{reason}   v={ego.speed_mps:5.2f} m/s{behaviour}"
        cv2.putText(bev, text, (8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        legend = [("truth", (110, 110, 110)), ("detections", (0, 140, 255)), ("tracks", (255, 220, 0)),
                  ("plan", (60, 230, 60)), ("ego", (255, 255, 255))]
        for i, (name, color) in enumerate(legend):
            cv2.putText(bev, name, (8 + 90 * i, BEV_H_PX - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)


def _to_local(origin: np.ndarray, xy: np.ndarray) -> np.ndarray:
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx, dy = xy[:, 0] - origin[0], xy[:, 1] - origin[1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy], -1)


def frame_times(view: RunView, fps: float) -> np.ndarray:
    t0, t1 = int(view.truth_times_ns[0]), int(view.truth_times_ns[-1])
    return np.arange(t0, t1 + 1, int(round(1e9 / fps)), dtype=np.int64)


def _frame_time_ns(view: RunView, at_s: float | None) -> int:
    """The time of the one .png frame: ``at_s`` [s of log time], which must lie inside the recorded
    run (a time outside it would show the first or last frame under a wrong cursor), or the middle."""
    if at_s is None:
        return int(np.median(view.truth_times_ns))
    t0_s, t1_s = view.truth_times_ns[0] / 1e9, view.truth_times_ns[-1] / 1e9
    if not (math.isfinite(at_s) and t0_s <= at_s <= t1_s):
        raise UsageError(f"--at: {at_s} is outside the log's time range; allowed [{t0_s:.3f}, {t1_s:.3f}] s")
    return int(round(at_s * 1e9))


def write_view(view: RunView, out: Path, fps: float = 10.0, at_s: float | None = None) -> int:
    """Render to ``out`` by its suffix; returns the number of frames written."""
    suffix = out.suffix.lower()
    if suffix == ".png":
        t_ns = _frame_time_ns(view, at_s)
        if not cv2.imwrite(str(out), view.frame(t_ns)):
            raise UsageError(f"cannot write {out}")
        return 1
    times = frame_times(view, fps)
    if suffix == ".mp4":
        first = view.frame(int(times[0]))
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0]))
        if not writer.isOpened():
            raise UsageError(f"cannot open {out} for writing (OpenCV mp4v)")
        try:
            writer.write(first)
            for t_ns in times[1:]:
                writer.write(view.frame(int(t_ns)))
        finally:
            writer.release()
        return len(times)
    if suffix == ".gif":
        from PIL import Image

        # Half size: a GIF stores every frame as a palette image, so full frames get large fast.
        frames = [Image.fromarray(cv2.cvtColor(cv2.resize(view.frame(int(t)), None, fx=0.5, fy=0.5,
                                                          interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
                  for t in times]
        frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
        return len(frames)
    raise UsageError(f"-o {out}: unknown format; use .mp4, .gif or .png")


def view_main(args) -> int:
    # Not runtime.record's EXTRA_TYPES: the one type it adds (SyncRecord) is on no topic the view draws,
    # and importing the recorder would load the whole stack (onnxruntime included) for nothing.
    from runtime.logs import LogCorruptError, read

    if not 0.1 <= args.fps <= 60.0:
        raise UsageError(f"--fps: {args.fps} is out of range; allowed [0.1, 60]")
    if args.at_s is not None and not math.isfinite(args.at_s):  # before reading the log
        raise UsageError(f"--at: {args.at_s} is not a finite number of seconds")
    try:
        contents = read(args.log, salvage=args.salvage, order="arrival", topics=drawn_topic)
    except FileNotFoundError as exc:
        raise UsageError(f"no such log: {args.log}") from exc
    except OSError as exc:  # a folder, no permission: the user's path, not a bug
        raise UsageError(f"cannot read log {args.log}: {exc.strerror or exc}") from None
    except LogCorruptError as exc:
        raise UsageError(f"{exc}\n  (--salvage renders the intact messages before the damage)") from exc
    view = RunView(contents.messages, contents.metadata)
    n = write_view(view, args.out, args.fps, args.at_s)
    print(f"wrote {args.out} ({n} frame{'s' if n != 1 else ''})")
    return 0
