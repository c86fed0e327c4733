"""Timing plots drawn with OpenCV (no matplotlib in the environment): one compute-time histogram per
stage with its budget line, and a timeline of every run (queueing in grey, compute in colour)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_W, _H, _M = 900, 320, 60  # image width, height, margin [px]
_BINS = 40
_COLOURS = [(200, 90, 30), (40, 160, 40), (40, 40, 210), (160, 60, 160), (20, 150, 200), (120, 120, 0),
            (90, 90, 200), (0, 110, 230)]  # BGR


def _text(img, s: str, xy: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, s, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def histogram(name: str, durations_ms: np.ndarray, budget_ms: float, p99_ms: float) -> np.ndarray:
    img = np.full((_H, _W, 3), 255, np.uint8)
    hi = max(float(durations_ms.max()) if durations_ms.size else 1.0, budget_ms) * 1.05
    counts, edges = np.histogram(durations_ms, bins=_BINS, range=(0.0, hi))
    top = max(int(counts.max()), 1)
    x = _M + (edges / hi * (_W - 2 * _M)).astype(int)
    y = (_H - _M - counts / top * (_H - 2 * _M)).astype(int)
    for i in range(_BINS):
        cv2.rectangle(img, (x[i], y[i]), (x[i + 1] - 1, _H - _M), (200, 120, 40), -1)
    for value, colour, label in ((budget_ms, (0, 0, 220), "budget"), (p99_ms, (0, 150, 0), "p99")):
        xv = _M + int(min(value, hi) / hi * (_W - 2 * _M))
        cv2.line(img, (xv, _M - 10), (xv, _H - _M), colour, 2)
        _text(img, f"{label} {value:.2f}", (xv + 4, _M + (0 if label == "budget" else 16)))
    cv2.line(img, (_M, _H - _M), (_W - _M, _H - _M), (0, 0, 0), 1)
    for frac in np.linspace(0, 1, 6):
        xv = _M + int(frac * (_W - 2 * _M))
        _text(img, f"{frac * hi:.1f}", (xv - 10, _H - _M + 18), 0.4)
    _text(img, f"{name}: compute time [ms], {durations_ms.size} runs, max count {top}", (_M, 25), 0.55)
    return img


def timeline(runs_ns: dict[str, list], t0_ns: int, span_ns: int) -> np.ndarray:
    names = sorted(runs_ns)
    row_h = 34
    img = np.full((_M + row_h * len(names) + 30, _W + 120, 3), 255, np.uint8)
    x0, width = 150, _W - 60
    scale = width / span_ns
    for row, name in enumerate(names):
        yc = _M + row * row_h
        _text(img, name, (8, yc + 18))
        colour = _COLOURS[row % len(_COLOURS)]
        arr = np.asarray(runs_ns[name], dtype=np.int64).reshape(-1, 3)
        sel = (arr[:, 1] + arr[:, 2] >= t0_ns) & (arr[:, 0] <= t0_ns + span_ns)
        for ready, start, dur in arr[sel]:
            xr, xs, xe = (x0 + int((v - t0_ns) * scale) for v in (ready, start, start + dur))
            if xs > xr:
                cv2.rectangle(img, (xr, yc + 6), (xs, yc + 24), (200, 200, 200), -1)
            cv2.rectangle(img, (xs, yc + 4), (max(xe, xs + 1), yc + 26), colour, -1)
    for k in range(11):
        xv = x0 + int(k * width / 10)
        cv2.line(img, (xv, _M - 8), (xv, img.shape[0] - 30), (230, 230, 230), 1)
        _text(img, f"{(t0_ns + k * span_ns / 10) / 1e6:.0f}", (xv - 12, img.shape[0] - 12), 0.4)
    _text(img, f"timeline [ms]: grey = queued (ready -> start), colour = compute", (8, 25), 0.55)
    return img


def write_plots(report: dict, out_dir: Path, window_s: float = 0.5) -> list[Path]:
    """hist_<stage>.png per stage and timeline.png (a window_s slice from the run's middle)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, runs in report["runs_ns"].items():
        arr = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
        st = report["stages"][name]
        path = out_dir / f"hist_{name.replace('.', '_')}.png"
        cv2.imwrite(str(path), histogram(name, arr[:, 2] / 1e6, st["budget_ms"], st["p99_ms"]))
        paths.append(path)
    span_ns = int(window_s * 1e9)
    t0_ns = max(int(report["duration_s"] * 1e9) // 2 - span_ns // 2, 0)
    path = out_dir / "timeline.png"
    cv2.imwrite(str(path), timeline(report["runs_ns"], t0_ns, span_ns))
    paths.append(path)
    return paths
