"""The perception modes every command offers, and the default: the full stack.

A module of its own so the command-line front ends can name them without importing the
perception stack (onnxruntime, open3d) just to print their help."""
from __future__ import annotations

PERCEPTION_MODES = ("onnx", "classical", "oracle")
DEFAULT_PERCEPTION = "onnx"  # the full stack; oracle is for testing planning in isolation
