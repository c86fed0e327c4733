"""GPU check: load both shipped models on CUDA, time inference, print one JSON object.

    .venv/bin/python -m perception.gpu_check [--runs 200] [--provider cuda|cpu|auto]

Times the onnxruntime call alone (IO-bound inputs on the device, outputs copied back) and the
whole stage step, median and p99 over ``runs`` calls after warm-up. Exits 1 when CUDA was asked
for and is not what the sessions run on; never falls back silently.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from perception.camera_detector import CameraDetectorConfig, camera_contract
from perception.lidar_detector import LidarDetectorConfig, lidar_contract
from perception.onnx_model import OnnxModel, SessionOptions

CAMERA_WIDTH_PX = 960  # the default sim camera the shipped model was trained on


def _device_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "no nvidia-smi"


def _time(fn, runs: int) -> dict:
    for _ in range(10):
        fn()
    ms = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        ms[i] = (time.perf_counter_ns() - t0) / 1e6
    return {"median_ms": round(float(np.median(ms)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--provider", choices=("cuda", "cpu", "auto"), default="cuda")
    args = ap.parse_args(argv)
    opts = SessionOptions(provider=args.provider, intra_op_threads=1)
    lidar_cfg, cam_cfg = LidarDetectorConfig(), CameraDetectorConfig()
    specs = {"lidar_detector": (Path(lidar_cfg.model_path), lidar_contract(lidar_cfg.grid)),
             "camera_detector": (Path(cam_cfg.model_path), camera_contract(cam_cfg, CAMERA_WIDTH_PX))}
    report = {"device": _device_name(), "requested": args.provider, "models": {}}
    rng = np.random.default_rng(0)
    ok = True
    for name, (path, contract) in specs.items():
        try:
            model = OnnxModel(path, contract, opts)
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, exit status says it failed
            report["models"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            ok = False
            continue
        shape = contract.inputs[0].shape
        x = rng.random(shape, dtype=np.float32)
        report["models"][name] = {"provider": model.provider, "device": model.device, "note": model.provider_note,
                                  "inference": _time(lambda: model.run({"input": x}), args.runs)}
        ok &= args.provider != "cuda" or model.provider == "CUDAExecutionProvider"
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
