"""A --config file: what it names changes, the rest keeps its defaults; its paths are its own."""
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError
from runtime.stack_config import StackConfig, load_stack_config


def test_a_budgets_table_changes_only_the_stages_it_names(tmp_path):
    # The table used to replace the whole dict: control's 1 ms and the lidar's 40 ms fell back to 10 ms.
    path = tmp_path / "cfg.toml"
    path.write_text("[budgets_ms]\nplanning = 15.0\n")
    cfg = load_stack_config(path)
    assert cfg.budgets_ms == {**StackConfig().budgets_ms, "planning": 15.0}
    assert cfg.budget_ns("control") == 1_000_000 and cfg.budget_ns("perception.lidar") == 40_000_000


def test_a_budget_for_a_perception_stage_that_does_not_exist_is_refused(tmp_path):
    # Any perception.* name used to pass: a typo set no budget, and perception.lidar kept its 40 ms.
    path = tmp_path / "cfg.toml"
    path.write_text('[budgets_ms]\n"perception.lidr" = 0.001\n')
    with pytest.raises(ConfigError, match=r"budgets_ms\.perception\.lidr: unknown stage; stages are "
                                          r".*perception\.lidar, perception\.camera, perception\.radar, fusion"):
        load_stack_config(path)
    path.write_text('[budgets_ms]\n"perception.radar" = 4.0\n')
    assert load_stack_config(path).budget_ns("perception.radar") == 4_000_000


def test_a_relative_model_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "configs" / "cfg.toml"
    path.parent.mkdir()
    path.write_text('[perception.lidar]\nmodel_path = "../models/mine.onnx"\n'
                    '[perception.camera]\nmodel_path = "/abs/cam.onnx"\n')
    cfg = load_stack_config(path)
    assert Path(cfg.perception.lidar.model_path) == tmp_path / "configs" / ".." / "models" / "mine.onnx"
    assert cfg.perception.camera.model_path == "/abs/cam.onnx"
    assert load_stack_config(tmp_path / "configs" / "cfg.toml").perception == cfg.perception  # deterministic


def test_sim_looks_for_a_relative_model_beside_its_config_whatever_the_working_directory(tmp_path):
    (tmp_path / "cfg.toml").write_text('[perception.lidar]\nmodel_path = "nope.onnx"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-m", "runtime.cli", "sim", "--config", str(tmp_path / "cfg.toml"),
                          "--duration", "0.2"], cwd=elsewhere, capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2, out.stderr
    assert f"model file not found: {tmp_path / 'nope.onnx'}" in out.stderr
