"""Model card (markdown) from the training record and the held-out evaluation."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnxruntime as ort

_PURPOSE = {
    "lidar": ("Bird's-eye-view CenterNet over a (height, log density, intensity) grid of the lidar "
              "cloud; outputs a per-class centre heatmap (sigmoid) and per-cell regression: offset x, "
              "offset y [cells], z [m], log length, log width, log height, sin yaw, cos yaw. Output "
              "stride 4 (2 m cells). Grid: x -52..52 m, y -26..26 m, 0.5 m cells, z -0.5..3.5 m "
              "(perception.bev.BevGridConfig defaults)."),
    "camera": ("Anchor-free CenterNet on the camera image band rows 180..540 of the 960x540 image, "
               "resized by 0.4 to 384x144, RGB in [0, 1] (perception.camera_input.CameraInputConfig "
               "defaults); outputs a per-class centre heatmap (sigmoid) and offset u, offset v [cells], "
               "log width, log height [input px]. Output stride 4."),
}


def _signature(path: Path) -> list[str]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [f"- input `{a.name}`: {a.shape} float32" for a in sess.get_inputs()] + \
           [f"- output `{a.name}`: {a.shape} float32" for a in sess.get_outputs()]


def _reproduce(info: dict) -> str:
    seeds = info.get("train_seeds") or [0, 0]
    return (f"rtdrive train {info.get('modality')} --seeds {seeds[0]}..{seeds[1]} --frames-per-seed "
            f"{info.get('frames_per_seed')} --epochs {info.get('epochs')} --batch-size {info.get('batch_size')} "
            f"--lr {info.get('lr')} --threads {info.get('torch_threads')}")


def render_card(model_path: Path, info: dict, result: dict, baseline: dict | None) -> str:
    modality = info.get("modality", result.get("detector", ""))
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
    lines = [f"# {model_path.name}", "",
             f"sha256 (first 16 hex): `{digest}`, {model_path.stat().st_size / 1e6:.2f} MB, ONNX opset 17.", "",
             "## Purpose and contract", "", _PURPOSE.get(modality, ""), "", *_signature(model_path), "",
             "Classes: 0 vehicle, 1 pedestrian (the simulated traffic holds vehicles only, so only class 0 "
             "is trained with positives).", "",
             "## Training data", "",
             f"Rendered by `runtime/dataset.py` from the built-in scenarios (scenario = seed mod 5, traffic "
             f"density 6..30 vehicles/km/lane and ego lane drawn from the seed), seeds "
             f"{info.get('train_seeds')}, {info.get('frames_per_seed')} frames per seed, "
             f"{info.get('frames')} frames, {info.get('positive_objects')} positive objects. Objects with too "
             f"little evidence (lidar: < 5 points; camera: < 20 px tall or < 40 % visible) are ignore "
             f"labels: zero weight in the heatmap loss.", "",
             "## Training", "",
             f"PyTorch, CPU, {info.get('torch_threads')} threads, {info.get('epochs')} epochs, batch "
             f"{info.get('batch_size')}, AdamW lr {info.get('lr')} with warm-up and cosine decay, focal loss "
             f"(CenterNet) on the heatmap + L1 on the regression at object centres; "
             f"{info.get('parameters')} parameters; {info.get('train_seconds')} s. Loss per epoch: "
             f"{info.get('loss_history')}.", "",
             f"Reproduce (needs the `[train]` extra): `{_reproduce(info)}`.", "",
             "## Held-out evaluation", "",
             f"`rtdrive eval-detector {result.get('detector')} --seeds {result['seeds'][0]}..{result['seeds'][1]}` "
             f"({result['frames']} frames, {result['gt_objects']} objects; {result['match']}):", "",
             "| detector | AP | latency p50 ms | latency p99 ms | provider |", "|---|---|---|---|---|",
             f"| {result['detector']} | {result['ap']:.3f} | {result['latency_ms']['p50']} | "
             f"{result['latency_ms']['p99']} | {result['provider']} |"]
    if baseline is not None:
        lines.append(f"| classical baseline | {baseline['ap']:.3f} | {baseline['latency_ms']['p50']} | "
                     f"{baseline['latency_ms']['p99']} | {baseline['provider']} |")
    lines += ["", "Latency is the whole stage step on this shared 2-core machine, 1 intra-op thread; "
              "see `rtdrive bench` for isolated figures.", "", "## Raw evaluation record", "", "```json",
              json.dumps(result, indent=1), "```", ""]
    return "\n".join(lines)
