"""`rtdrive eval-detector lidar|camera|classical`: AP on held-out seeds, and latency.

lidar / classical: a detection matches a ground-truth vehicle when their BEV centres are within
2 m (nuScenes style); ground truth is every vehicle whose centre is within 50 m of the ego, with
vehicles that return fewer than runtime.dataset.MIN_LIDAR_POINTS points marked ignore.
camera: IoU >= 0.5; vehicles under 20 px tall or under 40 % visible are ignore labels.
Latency is the whole stage step (encoding/preprocessing + inference + decoding), wall clock.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from core.messages import LABEL_VEHICLE, CameraImage, LidarScan
from perception.camera_detector import CameraDetectorConfig, camera_detect_step, load_camera_model
from perception.heads import DecodeConfig
from perception.health import DetectorHealth
from perception.lidar_detector import LidarDetectorConfig, lidar_detect_step, load_lidar_model
from perception.metrics import average_precision, bev_center_distance, iou_2d, match_frame
from perception.onnx_model import (FALLBACKS, PROVIDER_PREFERENCES, ModelFileMissingError, ModelLoadError,
                                   SessionOptions)
from runtime.dataset import DatasetSpec, camera_frames, camera_geometry, lidar_frames
from runtime.errors import UsageError, check_frames_per_seed, check_threads
from runtime.train_cli import DEFAULT_EVAL_SEEDS, DEFAULT_MODEL, parse_seeds
from sim.sensors.config import CameraConfig

# AP integrates over the whole precision-recall curve, so evaluation keeps low-score peaks that the
# running stack (DecodeConfig's default threshold) would drop.
EVAL_DECODE = DecodeConfig(score_threshold=0.05, max_detections=100)
LIDAR_MATCH_M = 2.0
LIDAR_EVAL_RANGE_M = 50.0
CAMERA_MATCH_IOU = 0.5
# The loader's advice names --perception, an option of sim and timing; here the model comes from --model.
EVAL_FALLBACKS = ("Train it with `rtdrive train lidar|camera`, or pass another ONNX file with --model "
                  "(`rtdrive eval-detector classical` needs no model).")


def _latency(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "mean": round(float(a.mean()), 3)}


def evaluate_lidar(kind: str, seeds: tuple[int, int], frames_per_seed: int, model_path: str | None,
                   options: SessionOptions) -> dict:
    cfg = LidarDetectorConfig(model_path=model_path or str(DEFAULT_MODEL["lidar"]), decode=EVAL_DECODE)
    model = None if kind == "classical" else load_lidar_model(cfg, options)
    spec = DatasetSpec(seeds=tuple(range(seeds[0], seeds[1] + 1)), frames_per_seed=frames_per_seed)
    frames = lidar_frames(spec, cfg.grid, keep_raw=True)
    health, all_scores, all_tp, n_gt, lat = DetectorHealth(), [], [], 0, []
    for i, (points, intensity) in enumerate(frames.raw):
        scan = LidarScan(0, "lidar", points, intensity, np.zeros(len(points), np.int32))
        t0 = time.perf_counter()
        health, det = lidar_detect_step(health, scan, 0, cfg, model)
        lat.append((time.perf_counter() - t0) * 1e3)
        k = int(frames.count[i])
        gt = frames.boxes[i, :k]
        gt_range = np.hypot(gt[:, 0], gt[:, 1])
        vehicle = frames.labels[i, :k] == LABEL_VEHICLE
        ignore = frames.ignore[i, :k] | (gt_range > LIDAR_EVAL_RANGE_M) | ~vehicle
        n_gt += int((~ignore).sum())
        keep = det.labels == LABEL_VEHICLE
        dxy, scores = det.boxes[keep, :2], det.scores[keep]
        dist = bev_center_distance(dxy, gt[:, :2])
        outside = np.hypot(dxy[:, 0], dxy[:, 1]) > LIDAR_EVAL_RANGE_M
        counted, tp = match_frame(scores, -dist, dist <= LIDAR_MATCH_M, ignore, outside)
        all_scores.append(scores[counted]); all_tp.append(tp[counted])
    scores, tp = np.concatenate(all_scores), np.concatenate(all_tp)
    ap = average_precision(scores, tp, n_gt)
    provider = "classical (numpy RANSAC + BEV components, CPU)" if model is None else model.provider
    return {"detector": kind, "ap": round(ap, 4), "latency_ms": _latency(lat), "provider": provider,
            "device": "cpu" if model is None else model.device, "frames": len(frames.raw), "gt_objects": n_gt,
            "seeds": list(seeds), "match": f"BEV centre distance <= {LIDAR_MATCH_M} m, vehicles within "
            f"{LIDAR_EVAL_RANGE_M} m", "health": {"unhealthy_frames": health.unhealthy_frames,
                                                  "fallback_frames": health.fallback_frames}}


def evaluate_camera(seeds: tuple[int, int], frames_per_seed: int, model_path: str | None,
                    options: SessionOptions) -> dict:
    cam_cfg = CameraConfig()
    cfg = CameraDetectorConfig(model_path=model_path or str(DEFAULT_MODEL["camera"]), decode=EVAL_DECODE)
    model = load_camera_model(cfg, cam_cfg.width_px, options)
    geom = camera_geometry(cam_cfg)
    spec = DatasetSpec(seeds=tuple(range(seeds[0], seeds[1] + 1)), frames_per_seed=frames_per_seed)
    frames = camera_frames(spec, cfg.input, cam_cfg, keep_raw=True)
    health, all_scores, all_tp, n_gt, lat = DetectorHealth(), [], [], 0, []
    for i, image in enumerate(frames.raw):
        t0 = time.perf_counter()
        health, det = camera_detect_step(health, CameraImage(0, "camera", image), 0, cfg, model, geom)
        lat.append((time.perf_counter() - t0) * 1e3)
        k = int(frames.count[i])
        gt, ignore = frames.boxes[i, :k], frames.ignore[i, :k]
        n_gt += int((~ignore).sum())
        keep = det.labels == LABEL_VEHICLE
        iou = iou_2d(det.boxes_px[keep], gt)
        counted, tp = match_frame(det.scores[keep], iou, iou >= CAMERA_MATCH_IOU, ignore,
                                  np.zeros(int(keep.sum()), bool))
        all_scores.append(det.scores[keep][counted]); all_tp.append(tp[counted])
    scores, tp = np.concatenate(all_scores), np.concatenate(all_tp)
    return {"detector": "camera", "ap": round(average_precision(scores, tp, n_gt), 4), "latency_ms": _latency(lat),
            "provider": model.provider, "device": model.device, "frames": len(frames.raw), "gt_objects": n_gt,
            "seeds": list(seeds), "match": f"IoU >= {CAMERA_MATCH_IOU}, vehicles >= 20 px tall",
            "health": {"unhealthy_frames": health.unhealthy_frames}}


def write_card(result: dict, model_path: Path, baseline: dict | None) -> Path:
    from perception.model_card import render_card
    info_path = model_path.with_suffix(".train.json")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    card = model_path.with_suffix(".md")
    card.write_text(render_card(model_path, info, result, baseline))
    return card


def eval_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rtdrive eval-detector", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detector", choices=("lidar", "camera", "classical"))
    ap.add_argument("--seeds", type=parse_seeds, default=DEFAULT_EVAL_SEEDS, help="held-out seeds A..B")
    ap.add_argument("--frames-per-seed", type=int, default=5)
    ap.add_argument("--model", default=None, help="ONNX file (default: the shipped model)")
    ap.add_argument("--provider", choices=PROVIDER_PREFERENCES, default="auto")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads, 1..64 (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--write-card", action="store_true", help="(re)write the model card next to the model")
    args = ap.parse_args(argv)
    check_threads(args.threads)
    check_frames_per_seed(args.frames_per_seed)
    if args.write_card and args.detector == "classical":  # refused before the evaluation, not after it
        raise UsageError("--write-card: the classical detector has no model file to write a card beside; "
                         "allowed with lidar or camera")
    options = SessionOptions(provider=args.provider, intra_op_threads=args.threads)
    try:
        if args.detector == "camera":
            result = evaluate_camera(args.seeds, args.frames_per_seed, args.model, options)
            baseline = None
        else:
            result = evaluate_lidar(args.detector, args.seeds, args.frames_per_seed, args.model, options)
            baseline = None
            if args.detector == "lidar":
                baseline = evaluate_lidar("classical", args.seeds, args.frames_per_seed, None, options)
                result["classical_baseline"] = {"ap": baseline["ap"], "latency_ms": baseline["latency_ms"]}
    except (ModelFileMissingError, ModelLoadError) as exc:
        raise UsageError(str(exc).replace(FALLBACKS, EVAL_FALLBACKS)) from None
    if args.write_card:
        model_path = Path(args.model or DEFAULT_MODEL[args.detector])
        result["card"] = str(write_card(result, model_path, baseline))
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(f"{result['detector']}: AP {result['ap']:.3f} on {result['gt_objects']} objects, "
              f"{result['frames']} frames (seeds {args.seeds[0]}..{args.seeds[1]}); latency p50 {lat['p50']} ms, "
              f"p99 {lat['p99']} ms on {result['provider']}")
        if "classical_baseline" in result:
            print(f"classical baseline: AP {result['classical_baseline']['ap']:.3f}")
    return 0
