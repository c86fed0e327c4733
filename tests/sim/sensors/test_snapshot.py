import cv2
import numpy as np
import pytest

from sim.scenario import load_scenario
from sim.snapshot import write_snapshot


def test_snapshot_writes_viewable_pngs(tmp_path):
    paths = write_snapshot(load_scenario("cut_in"), 1, 0.5, tmp_path)
    cam = cv2.imread(str(paths["camera"]))
    bev = cv2.imread(str(paths["bev"]))
    assert cam.shape == (540, 960, 3) and bev.shape == (900, 900, 3)
    assert cam.std() > 10 and (bev > 60).any()  # not blank
    boxes = cv2.imread(str(paths["camera_boxes"]))
    assert np.abs(boxes.astype(int) - cam.astype(int)).sum() > 0  # the cut-in car is boxed


def test_snapshot_rejects_bad_time(tmp_path):
    with pytest.raises(ValueError, match="snapshot time"):
        write_snapshot(load_scenario("cut_in"), 1, float("nan"), tmp_path)
