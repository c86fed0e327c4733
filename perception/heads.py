"""Output heads of the two networks: layout constants, training targets and decoding.

Both networks are CenterNet-style: a per-class centre heatmap (sigmoid inside the graph) and
per-cell regressions read at the heatmap's peaks. Targets and decoding live side by side so that
``decode(encode(boxes)) == boxes`` is testable without a network.

Lidar regression channels (per output cell): offset of the centre inside the cell along x and y
[cells, 0..1], z [m], log length, log width, log height [log m], sin yaw, cos yaw.
Camera regression channels: offset u, offset v [cells, 0..1], log width, log height [log input px].
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import maximum_filter

from core.config import rng
from core.messages import LABEL_NAMES
from perception.bev import BevGridConfig

NUM_CLASSES = len(LABEL_NAMES)
LIDAR_REG_CHANNELS = 8
CAMERA_REG_CHANNELS = 4
OUTPUT_STRIDE = 4


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    score_threshold: float = field(default=0.3, metadata=rng(0.0, 1.0))
    max_detections: int = field(default=64, metadata=rng(1, 1024))


@dataclass(frozen=True, slots=True)
class Peaks:
    cls: np.ndarray  # (N,) int64
    row: np.ndarray  # (N,) int64
    col: np.ndarray  # (N,) int64
    score: np.ndarray  # (N,) float32


def find_peaks(heatmap: np.ndarray, cfg: DecodeConfig) -> Peaks:
    """(C, H, W) scores in [0, 1] -> local maxima (3x3) above threshold, best first, at most K."""
    local_max = maximum_filter(heatmap, size=(1, 3, 3), mode="constant", cval=0.0)
    keep = (heatmap == local_max) & (heatmap >= cfg.score_threshold)
    cls, row, col = np.nonzero(keep)
    score = heatmap[cls, row, col]
    order = np.argsort(-score, kind="stable")[:cfg.max_detections]
    return Peaks(cls[order], row[order], col[order], score[order].astype(np.float32))


# ----------------------------------------------------------------------------------------------
# Lidar
# ----------------------------------------------------------------------------------------------
def lidar_out_hw(grid: BevGridConfig) -> tuple[int, int]:
    return grid.rows // OUTPUT_STRIDE, grid.cols // OUTPUT_STRIDE


def decode_lidar(heatmap: np.ndarray, reg: np.ndarray, grid: BevGridConfig,
                 cfg: DecodeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, H, W), (8, H, W) -> boxes (N, 7) float32 vehicle frame, labels (N,) int16, scores (N,)."""
    p = find_peaks(heatmap, cfg)
    r = reg[:, p.row, p.col]  # (8, N)
    cell = grid.cell_m * OUTPUT_STRIDE
    x = grid.x_min_m + (p.row + r[0]) * cell
    y = grid.y_min_m + (p.col + r[1]) * cell
    size = np.exp(np.clip(r[3:6], -3.0, 3.0))
    yaw = np.arctan2(r[6], r[7])
    boxes = np.stack([x, y, r[2], size[0], size[1], size[2], yaw], axis=1).astype(np.float32)
    return boxes, p.cls.astype(np.int16), p.score


def lidar_targets(boxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray, grid: BevGridConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Targets of one frame: heatmap (C, H, W), regression (8, H, W), regression mask (H, W) and
    heatmap weight (H, W) (0 around ignored objects, so their faint evidence is not punished)."""
    h, w = lidar_out_hw(grid)
    cell = grid.cell_m * OUTPUT_STRIDE
    heat = np.zeros((NUM_CLASSES, h, w), np.float32)
    reg = np.zeros((LIDAR_REG_CHANNELS, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    weight = np.ones((h, w), np.float32)
    if len(boxes) == 0:
        return heat, reg, mask, weight
    fr = (boxes[:, 0] - grid.x_min_m) / cell
    fc = (boxes[:, 1] - grid.y_min_m) / cell
    rows, cols = np.arange(h, dtype=np.float32)[None, :, None], np.arange(w, dtype=np.float32)[None, None, :]
    d2 = (rows + 0.5 - fr[:, None, None]) ** 2 + (cols + 0.5 - fc[:, None, None]) ** 2  # (K, H, W)
    sigma = np.maximum(0.8, 0.25 * boxes[:, 4] / cell)
    g = np.exp(-0.5 * d2 / (sigma[:, None, None] ** 2))
    inside = (fr >= 0) & (fr < h) & (fc >= 0) & (fc < w)
    pos = inside & ~ignore
    for c in range(NUM_CLASSES):  # a handful of classes, each a batched max over its objects
        sel = pos & (labels == c)
        if sel.any():
            heat[c] = g[sel].max(axis=0)
    if (inside & ignore).any():
        weight[(d2[inside & ignore] <= 4.0).any(axis=0)] = 0.0
    ri, ci = np.floor(fr[pos]).astype(np.int64), np.floor(fc[pos]).astype(np.int64)
    b = boxes[pos]
    heat[labels[pos].astype(np.int64), ri, ci] = 1.0
    reg[:, ri, ci] = np.stack([fr[pos] - ri, fc[pos] - ci, b[:, 2], np.log(b[:, 3]), np.log(b[:, 4]),
                               np.log(b[:, 5]), np.sin(b[:, 6]), np.cos(b[:, 6])])
    mask[ri, ci] = 1.0
    weight[ri, ci] = 1.0
    return heat, reg, mask, weight


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------
def decode_camera(heatmap: np.ndarray, reg: np.ndarray, cfg: DecodeConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, H, W), (4, H, W) -> boxes (N, 4) in network-input pixels, labels, scores."""
    p = find_peaks(heatmap, cfg)
    r = reg[:, p.row, p.col]
    u = (p.col + r[0]) * OUTPUT_STRIDE
    v = (p.row + r[1]) * OUTPUT_STRIDE
    half_w = 0.5 * np.exp(np.clip(r[2], -2.0, 7.0))
    half_h = 0.5 * np.exp(np.clip(r[3], -2.0, 7.0))
    boxes = np.stack([u - half_w, v - half_h, u + half_w, v + half_h], axis=1).astype(np.float32)
    return boxes, p.cls.astype(np.int16), p.score


def camera_targets(boxes_in: np.ndarray, labels: np.ndarray, ignore: np.ndarray, in_hw: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Targets of one frame from boxes in network-input pixels; layout as ``lidar_targets``."""
    h, w = in_hw[0] // OUTPUT_STRIDE, in_hw[1] // OUTPUT_STRIDE
    heat = np.zeros((NUM_CLASSES, h, w), np.float32)
    reg = np.zeros((CAMERA_REG_CHANNELS, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    weight = np.ones((h, w), np.float32)
    bw, bh = boxes_in[:, 2] - boxes_in[:, 0], boxes_in[:, 3] - boxes_in[:, 1]
    valid = (bw >= 1.0) & (bh >= 1.0)
    if not valid.any():
        return heat, reg, mask, weight
    b, lab, ign = boxes_in[valid], labels[valid], ignore[valid]
    bw, bh = bw[valid], bh[valid]
    fu = 0.5 * (b[:, 0] + b[:, 2]) / OUTPUT_STRIDE
    fv = 0.5 * (b[:, 1] + b[:, 3]) / OUTPUT_STRIDE
    rows, cols = np.arange(h, dtype=np.float32)[None, :, None], np.arange(w, dtype=np.float32)[None, None, :]
    su = np.maximum(0.7, bw / OUTPUT_STRIDE / 6.0)[:, None, None]
    sv = np.maximum(0.7, bh / OUTPUT_STRIDE / 6.0)[:, None, None]
    g = np.exp(-0.5 * (((cols + 0.5 - fu[:, None, None]) / su) ** 2 + ((rows + 0.5 - fv[:, None, None]) / sv) ** 2))
    for c in range(NUM_CLASSES):
        sel = ~ign & (lab == c)
        if sel.any():
            heat[c] = g[sel].max(axis=0)
    if ign.any():  # the whole box of an ignored object is neutral ground for the heatmap loss
        bi = b[ign] / OUTPUT_STRIDE
        in_box = ((cols >= bi[:, 0, None, None] - 1) & (cols <= bi[:, 2, None, None]) &
                  (rows >= bi[:, 1, None, None] - 1) & (rows <= bi[:, 3, None, None]))
        weight[in_box.any(axis=0)] = 0.0
    pos = ~ign
    ci = np.clip(np.floor(fu[pos]).astype(np.int64), 0, w - 1)
    ri = np.clip(np.floor(fv[pos]).astype(np.int64), 0, h - 1)
    heat[lab[pos].astype(np.int64), ri, ci] = 1.0
    reg[:, ri, ci] = np.stack([fu[pos] - ci, fv[pos] - ri, np.log(bw[pos]), np.log(bh[pos])])
    mask[ri, ci] = 1.0
    weight[ri, ci] = 1.0
    return heat, reg, mask, weight
