"""`rtdrive train lidar|camera`: render a labelled set from seeded scenarios, train, export ONNX,
evaluate on held-out seeds and write the model card.

Needs the optional ``[train]`` extra (PyTorch, onnx); the running stack never imports this.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from perception.bev import BevGridConfig
from perception.camera_input import CameraInputConfig, boxes_to_input
from perception.heads import camera_targets, lidar_targets
from perception.onnx_model import MODELS_DIR
from runtime.dataset import DatasetSpec, camera_frames, lidar_frames
from runtime.errors import check_frames_per_seed, check_threads

DEFAULT_MODEL = {"lidar": MODELS_DIR / "lidar_detector.onnx", "camera": MODELS_DIR / "camera_detector.onnx"}
DEFAULT_TRAIN_SEEDS = (0, 239)
DEFAULT_EPOCHS = {"lidar": 10, "camera": 8}
DEFAULT_EVAL_SEEDS = (1000, 1039)


def parse_seeds(text: str) -> tuple[int, int]:
    """"A..B" (inclusive) -> (A, B)."""
    try:
        a, b = (int(x) for x in text.split(".."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like A..B (e.g. 1000..1039), got {text!r}") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: need 0 <= A <= B")
    return a, b


def _build_targets(modality: str, frames, grid: BevGridConfig, cam_in: CameraInputConfig):
    from perception.train.fit import Targets
    out = []
    for i in range(frames.inputs.shape[0]):
        k = int(frames.count[i])
        boxes, labels, ignore = frames.boxes[i, :k], frames.labels[i, :k], frames.ignore[i, :k]
        if modality == "lidar":
            out.append(lidar_targets(boxes, labels, ignore, grid))
        else:
            out.append(camera_targets(boxes_to_input(boxes, cam_in), labels, ignore, frames.inputs.shape[2:]))
    return Targets(*(np.stack(parts) for parts in zip(*out)))


def train_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rtdrive train", description=__doc__)
    ap.add_argument("modality", choices=("lidar", "camera"))
    ap.add_argument("--seeds", type=parse_seeds, default=DEFAULT_TRAIN_SEEDS, help="training seeds A..B")
    ap.add_argument("--eval-seeds", type=parse_seeds, default=DEFAULT_EVAL_SEEDS, help="held-out seeds A..B")
    ap.add_argument("--frames-per-seed", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None, help="default: 10 for lidar, 8 for camera (the shipped models)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads, 1..64 (default 2)")
    ap.add_argument("--out", type=Path, default=None, help="ONNX path (default models/<modality>_detector.onnx)")
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation and the card")
    args = ap.parse_args(argv)
    check_threads(args.threads)
    check_frames_per_seed(args.frames_per_seed)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("rtdrive train needs PyTorch: pip install 'rtdrive[train]'", file=sys.stderr)
        return 2
    from perception.train.fit import FitConfig, export_onnx, fit
    from perception.train.nets import camera_net, lidar_net

    out = args.out or DEFAULT_MODEL[args.modality]
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.modality]
    grid, cam_in = BevGridConfig(), CameraInputConfig()
    spec = DatasetSpec(seeds=tuple(range(args.seeds[0], args.seeds[1] + 1)), frames_per_seed=args.frames_per_seed)
    t0 = time.perf_counter()
    frames = lidar_frames(spec, grid) if args.modality == "lidar" else camera_frames(spec, cam_in)
    targets = _build_targets(args.modality, frames, grid, cam_in)
    n_pos = int(targets.mask.sum())
    print(f"rendered {frames.inputs.shape[0]} frames ({n_pos} positive objects) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    net = lidar_net() if args.modality == "lidar" else camera_net()
    cfg = FitConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                    seed=args.seeds[0])
    t1 = time.perf_counter()
    history = fit(net, frames.inputs, targets, cfg, log=lambda s: print(s, flush=True))
    train_s = time.perf_counter() - t1
    export_onnx(net, frames.inputs.shape[1:], out)
    info = {"modality": args.modality, "train_seeds": list(args.seeds), "frames_per_seed": args.frames_per_seed,
            "frames": int(frames.inputs.shape[0]), "positive_objects": n_pos, "epochs": epochs,
            "batch_size": args.batch_size, "lr": args.lr, "torch_threads": args.threads,
            "loss_history": [round(v, 4) for v in history], "train_seconds": round(train_s, 1),
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "input_chw": list(frames.inputs.shape[1:])}
    out.with_suffix(".train.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"exported {out} ({out.stat().st_size / 1e6:.2f} MB) after {train_s:.0f} s of training", flush=True)
    if args.no_eval:
        return 0
    from runtime.eval_detector import eval_main
    return eval_main([args.modality, "--seeds", f"{args.eval_seeds[0]}..{args.eval_seeds[1]}",
                      "--model", str(out), "--write-card"])
