"""Average precision with greedy score-ordered matching (nuScenes / VOC style) and ignore labels.

A detection matched to an ignored ground truth is dropped (neither true nor false positive); so is
an unmatched detection whose centre lies outside the evaluated region, which the caller marks.
"""
from __future__ import annotations

import numpy as np


def bev_center_distance(det_xy: np.ndarray, gt_xy: np.ndarray) -> np.ndarray:
    return np.linalg.norm(det_xy[:, None, :] - gt_xy[None, :, :], axis=-1)


def iou_2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) u_min, v_min, u_max, v_max -> (N, M) IoU."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_frame(scores: np.ndarray, affinity: np.ndarray, ok: np.ndarray, gt_ignore: np.ndarray,
                det_outside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one frame. ``affinity`` (N, M) is any "bigger is better" score and ``ok``
    (N, M) whether a pair may match. Returns per detection: counted (bool) and true positive (bool)."""
    n, m = affinity.shape
    counted, tp = np.ones(n, bool), np.zeros(n, bool)
    taken = np.zeros(m, bool)
    for i in np.argsort(-scores, kind="stable"):  # greedy by score is inherently sequential
        cand = ok[i] & ~taken
        if cand.any():
            j = int(np.argmax(np.where(cand, affinity[i], -np.inf)))
            taken[j] = True
            if gt_ignore[j]:
                counted[i] = False
            else:
                tp[i] = True
        elif det_outside[i]:
            counted[i] = False
    return counted, tp


def average_precision(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP from pooled detections (scores, true-positive flags)."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp_c = np.cumsum(tp[order])
    fp_c = np.cumsum(~tp[order])
    recall = tp_c / n_gt
    precision = tp_c / np.maximum(tp_c + fp_c, 1)
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))
