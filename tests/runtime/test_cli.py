"""CLI contract: bad input is one line on stderr and exit code 2, no traceback."""
import json
import subprocess
import sys

import pytest

from runtime.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True)


def test_unknown_scenario_is_one_line_exit_2():
    proc = run_cli("sim", "--scenario", "no_such_scenario")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_scenario" in lines[0] and "free_road" in lines[0]
    assert "Traceback" not in proc.stderr


def test_malformed_scenario_file_names_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = "x"\nduration_s = 10\nspeeed = 3\n')
    assert main(["sim", "--scenario", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "speeed" in err[0]


def test_invalid_toml_syntax_exit_2(tmp_path, capsys):
    bad = tmp_path / "broken.toml"
    bad.write_text("name = \n")
    assert main(["sim", "--scenario", str(bad)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_scenarios_lists_builtins(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("free_road", "lead_brake", "cut_in", "stopped_vehicle", "curve"):
        assert name in out


def test_sim_json_has_the_documented_keys(capsys):
    assert main(["sim", "--scenario", "free_road", "--duration", "2", "--perception", "oracle", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("scenario", "seed", "duration_s", "collisions", "min_ttc_s", "min_distance_m",
                "mean_speed_mps", "max_abs_jerk_mps3", "max_abs_lat_accel_mps2", "real_time_factor",
                "stages", "modes", "sensors", "planner"):
        assert key in summary, key
    for stage in ("fusion", "planning", "control", "safety"):
        assert set(summary["stages"][stage]) >= {"p50_ms", "p99_ms", "max_ms", "budget_ms", "misses"}
    assert summary["sensors"]["oracle"]["messages"] == 21  # 10 Hz over [0, 2] s


def test_bad_duration_exit_2(capsys):
    assert main(["sim", "--duration", "-1"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_unknown_benchmark_exit_2(capsys):
    assert main(["bench", "no_such_bench"]) == 2
    assert "tick_oracle" in capsys.readouterr().err


def test_full_stack_is_the_default_and_reports_its_providers(capsys):
    assert main(["sim", "--scenario", "free_road", "--duration", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["perception"] == "onnx"
    for model in ("lidar_detector", "camera_detector"):
        assert summary["providers"][model]["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert {"perception.lidar", "perception.camera", "perception.radar"} <= set(summary["stages"])
    assert "oracle" not in summary["sensors"]


def test_missing_model_is_one_line_naming_file_and_fallback(tmp_path, capsys):
    cfg = tmp_path / "stack.toml"
    cfg.write_text(f'[perception.lidar]\nmodel_path = "{tmp_path / "nope.onnx"}"\n')
    assert main(["sim", "--duration", "1", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.onnx" in err[0] and "--perception classical" in err[0]


def test_corrupt_model_is_one_line_naming_file_and_fallback(tmp_path, capsys):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a model at all\n")
    cfg = tmp_path / "stack.toml"
    cfg.write_text(f'[perception.lidar]\nmodel_path = "{bad}"\n')
    assert main(["sim", "--duration", "1", "--provider", "cpu", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "garbage.onnx" in err[0] and "--perception classical" in err[0]
