"""The two small CenterNet-style networks: a stride-8 encoder, one upsampling step back to
stride 4, then 1x1 heads. BatchNorm folds into the convolutions at ONNX export (onnxruntime
fuses Conv+BN), so inference pays only for convolutions and ReLUs.
"""
from __future__ import annotations

import torch
from torch import nn

from perception.heads import CAMERA_REG_CHANNELS, LIDAR_REG_CHANNELS, NUM_CLASSES

HEATMAP_PRIOR_BIAS = -2.19  # sigmoid(-2.19) ~ 0.1: the CenterNet prior keeps early focal loss sane


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class CenterNetSmall(nn.Module):
    """(B, C_in, H, W) -> heatmap (B, NUM_CLASSES, H/4, W/4) in [0, 1], regression (B, R, H/4, W/4)."""

    def __init__(self, c_in: int, reg_channels: int, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        w1, w2, w3 = widths
        self.s2 = _block(c_in, w1, 2)
        self.s4 = nn.Sequential(_block(w1, w2, 2), _block(w2, w2))
        self.s8 = nn.Sequential(_block(w2, w3, 2), _block(w3, w3), _block(w3, w3))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = nn.Sequential(nn.Conv2d(w2 + w3, w2 + w3 // 2, 1, bias=False), nn.BatchNorm2d(w2 + w3 // 2),
                                  nn.ReLU(inplace=True), _block(w2 + w3 // 2, w2 + w3 // 2))
        c = w2 + w3 // 2
        self.heat = nn.Conv2d(c, NUM_CLASSES, 1)
        self.reg = nn.Conv2d(c, reg_channels, 1)
        nn.init.constant_(self.heat.bias, HEATMAP_PRIOR_BIAS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f4 = self.s4(self.s2(x))
        f8 = self.s8(f4)
        f = self.fuse(torch.cat([f4, self.up(f8)], dim=1))
        return torch.sigmoid(self.heat(f)), self.reg(f)

    def heat_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: logits, so the focal loss can use the numerically stable log-sigmoid."""
        f4 = self.s4(self.s2(x))
        f = self.fuse(torch.cat([f4, self.up(self.s8(f4))], dim=1))
        return self.heat(f), self.reg(f)


def lidar_net() -> CenterNetSmall:
    return CenterNetSmall(3, LIDAR_REG_CHANNELS, (12, 24, 48))


def camera_net() -> CenterNetSmall:
    return CenterNetSmall(3, CAMERA_REG_CHANNELS, (12, 24, 48))
