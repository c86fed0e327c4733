"""One tiny training step and export (skipped without the [train] extra), and dataset determinism."""
import numpy as np
import pytest

from perception.contract import ModelContract, TensorSpec
from perception.onnx_model import OnnxModel, SessionOptions


def test_one_training_step_exports_a_contract_conforming_model(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from perception.train.fit import FitConfig, Targets, export_onnx, fit
    from perception.train.nets import lidar_net
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 32, 16)).astype(np.float16)
    heat = np.zeros((2, 2, 8, 4), np.float32)
    heat[:, 0, 3, 2] = 1.0
    targets = Targets(heat, np.zeros((2, 8, 8, 4), np.float32), heat[:, 0].copy(), np.ones((2, 8, 4), np.float32))
    history = fit(lidar_net(), x, targets, FitConfig(epochs=1, batch_size=2, threads=1), log=lambda s: None)
    assert len(history) == 1 and np.isfinite(history[0])
    net = lidar_net()
    path = tmp_path / "tiny.onnx"
    export_onnx(net, (3, 32, 16), path)
    contract = ModelContract((TensorSpec("input", (1, 3, 32, 16)),),
                             (TensorSpec("heatmap", (1, 2, 8, 4)), TensorSpec("regression", (1, 8, 8, 4))))
    model = OnnxModel(path, contract, SessionOptions(provider="cpu", warmup_runs=1))
    heat_out, reg_out = model.run({"input": x[:1].astype(np.float32)})
    assert heat_out.shape == (1, 2, 8, 4) and ((heat_out >= 0) & (heat_out <= 1)).all()


def test_rendered_dataset_is_deterministic():
    from runtime.dataset import DatasetSpec, lidar_frames
    spec = DatasetSpec(seeds=(2,), frames_per_seed=1)
    a, b = lidar_frames(spec), lidar_frames(spec)
    assert a.inputs.tobytes() == b.inputs.tobytes() and a.boxes.tobytes() == b.boxes.tobytes()
    assert a.count[0] > 0 and a.inputs.dtype == np.float16
