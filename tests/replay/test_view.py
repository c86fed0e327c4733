"""`rtdrive view` renders a recorded run to png, gif and mp4 headless."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.record import RunRecorder
from sim.scenario import load_scenario


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("view") / "run.mcap"
    loop = ClosedLoop(load_scenario("cut_in"), RunOptions(duration_s=1.0))
    with RunRecorder(loop, path):
        loop.run()
    return path


def test_png_frame_shows_ego_plan_and_mode(log, tmp_path):
    out = tmp_path / "v.png"
    assert main(["view", str(log), "-o", str(out), "--at", "0.5"]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (620, 960, 3)
    bev = img[30:270]
    assert (bev == 255).all(axis=2).sum() > 50  # the ego box (white)
    assert (np.abs(bev.astype(int) - (60, 230, 60)).sum(axis=2) < 10).sum() > 50  # the plan (green)
    assert (np.abs(img[5, 500].astype(int) - (80, 170, 60)).sum()) < 10  # NOMINAL banner


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animations(log, tmp_path, suffix):
    out = tmp_path / f"v{suffix}"
    assert main(["view", str(log), "-o", str(out), "--fps", "5"]) == 0
    assert out.stat().st_size > 1000
    if suffix == ".mp4":
        cap = cv2.VideoCapture(str(out))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
        cap.release()


def test_bad_requests(log, tmp_path, capsys):
    assert main(["view", str(log), "-o", str(tmp_path / "v.bmp")]) == 2
    assert main(["view", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "v.png")]) == 2
    truncated = tmp_path / "cut.mcap"
    truncated.write_bytes(log.read_bytes()[:1000])
    assert main(["view", str(truncated), "-o", str(tmp_path / "v.png")]) == 2
    assert "byte" in capsys.readouterr().err


@pytest.mark.parametrize("at", ["nan", "inf", "-1", "5"])
def test_frame_time_not_finite_or_outside_the_log_exit_2_naming_the_range(log, tmp_path, capsys, at):
    """--at nan/inf raised a traceback; a time outside the log was clamped to its first or last frame."""
    out = tmp_path / "v.png"
    assert main(["view", str(log), "-o", str(out), "--at", at]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("rtdrive view: error: --at: ")
    assert "not a finite number" in err if at in ("nan", "inf") else "allowed [0.000, 1.000] s" in err
    assert not out.exists()


def test_view_of_a_directory_exit_2(tmp_path, capsys):
    assert main(["view", str(tmp_path), "-o", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(tmp_path) in err


def test_view_of_a_full_stack_run_skips_pixel_boxes_in_the_birds_eye_view(tmp_path):
    """Camera detections (Detections2D) are recorded too; the bird's-eye view must not trip on them."""
    from runtime.cli import main
    log = tmp_path / "onnx.mcap"
    assert main(["sim", "--scenario", "cut_in", "--duration", "1", "--record", str(log), "--json"]) == 0
    out = tmp_path / "frame.png"
    assert main(["view", str(log), "-o", str(out), "--at", "0.9"]) == 0
    assert out.stat().st_size > 10_000
