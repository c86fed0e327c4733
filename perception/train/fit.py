"""Training loop (focal loss on the heatmap, masked L1 on the regression) and ONNX export.

Arrays in, trained network out: this module knows nothing of the simulator. Determinism: the
shuffling generator and torch's initialisation are seeded, and torch runs single-process.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from perception.train.nets import CenterNetSmall

ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("heatmap", "regression")


@dataclass(frozen=True, slots=True)
class FitConfig:
    epochs: int = 8
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    reg_weight: float = 1.0
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True, slots=True)
class Targets:
    heat: np.ndarray  # (F, C, h, w) float32
    reg: np.ndarray  # (F, R, h, w) float32
    mask: np.ndarray  # (F, h, w) float32 regression cells
    weight: np.ndarray  # (F, h, w) float32 heatmap loss weight


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalised by the positives."""
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos = (target >= 1.0).float()
    w = weight.unsqueeze(1)
    pos_loss = -(1 - p) ** 2 * log_p * pos
    neg_loss = -(1 - target) ** 4 * p ** 2 * log_1mp * (1 - pos)
    n_pos = pos.sum().clamp(min=1.0)
    return ((pos_loss + neg_loss) * w).sum() / n_pos


def fit(net: CenterNetSmall, inputs: np.ndarray, targets: Targets, cfg: FitConfig,
        log: Callable[[str], None] = print) -> list[float]:
    """Train in place; returns the mean loss of each epoch."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    gen = np.random.default_rng(cfg.seed)
    n = inputs.shape[0]
    steps_per_epoch = max(1, n // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    history = []
    net.train()
    for epoch in range(cfg.epochs):
        order = gen.permutation(n)
        losses = []
        for k in range(steps_per_epoch):
            idx = np.sort(order[k * cfg.batch_size:(k + 1) * cfg.batch_size])
            x = torch.from_numpy(inputs[idx].astype(np.float32))
            heat_t, reg_t = torch.from_numpy(targets.heat[idx]), torch.from_numpy(targets.reg[idx])
            mask_t, w_t = torch.from_numpy(targets.mask[idx]), torch.from_numpy(targets.weight[idx])
            heat_logits, reg = net.heat_logits(x)
            l_heat = focal_loss(heat_logits, heat_t, w_t)
            m = mask_t.unsqueeze(1)
            l_reg = (torch.abs(reg - reg_t) * m).sum() / m.sum().clamp(min=1.0)
            loss = l_heat + cfg.reg_weight * l_reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]:.4f}")
    net.eval()
    return history


def export_onnx(net: CenterNetSmall, input_chw: tuple[int, int, int], path: str | Path) -> None:
    """Fixed-shape (batch 1) export; the shapes become the model's contract."""
    net.eval()
    dummy = torch.zeros((1, *input_chw), dtype=torch.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter is chosen on purpose: the dynamo one needs onnxscript and produces
    # the same graph for this plain conv net. Its deprecation notice is not news to the user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (dummy,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          opset_version=ONNX_OPSET, dynamo=False)
