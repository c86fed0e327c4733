"""Training and ONNX export (needs the optional ``[train]`` extra: PyTorch). Nothing here is
imported by the running stack."""
