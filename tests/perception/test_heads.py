import numpy as np

from perception.bev import BevGridConfig
from perception.heads import (OUTPUT_STRIDE, DecodeConfig, camera_targets, decode_camera, decode_lidar,
                              find_peaks, lidar_targets, lidar_out_hw)


def test_find_peaks_keeps_local_maxima_above_threshold_best_first():
    heat = np.zeros((2, 10, 10), np.float32)
    heat[0, 2, 3] = 0.9
    heat[0, 2, 4] = 0.8  # neighbour of a stronger peak: suppressed
    heat[1, 7, 7] = 0.6
    heat[0, 8, 1] = 0.2  # under the threshold
    p = find_peaks(heat, DecodeConfig(score_threshold=0.3))
    assert p.cls.tolist() == [0, 1] and p.row.tolist() == [2, 7] and p.col.tolist() == [3, 7]
    np.testing.assert_allclose(p.score, [0.9, 0.6])


def test_lidar_decoding_of_a_planted_heatmap():
    grid = BevGridConfig()
    h, w = lidar_out_hw(grid)
    heat = np.zeros((2, h, w), np.float32)
    reg = np.zeros((8, h, w), np.float32)
    heat[0, 30, 10] = 0.95
    reg[:, 30, 10] = [0.25, 0.5, 0.8, np.log(4.5), np.log(1.9), np.log(1.6), np.sin(0.3), np.cos(0.3)]
    boxes, labels, scores = decode_lidar(heat, reg, grid, DecodeConfig())
    cell = grid.cell_m * OUTPUT_STRIDE
    np.testing.assert_allclose(boxes[0], [grid.x_min_m + 30.25 * cell, grid.y_min_m + 10.5 * cell, 0.8,
                                          4.5, 1.9, 1.6, 0.3], rtol=1e-5, atol=1e-5)
    assert labels.tolist() == [0] and scores[0] == np.float32(0.95)


def test_lidar_targets_round_trip_and_ignore_weight():
    grid = BevGridConfig()
    boxes = np.array([[10.3, -3.2, 0.75, 4.6, 1.85, 1.5, 0.3], [-20.0, 6.0, 0.8, 4.0, 2.0, 1.6, -1.0],
                      [40.0, 0.0, 0.75, 4.0, 2.0, 1.5, 0.0]], np.float32)
    heat, reg, mask, weight = lidar_targets(boxes, np.zeros(3, np.int16), np.array([False, False, True]), grid)
    assert mask.sum() == 2
    assert (weight == 0).any()  # around the ignored object
    dec, _, _ = decode_lidar(heat, reg, grid, DecodeConfig())
    order = np.argsort(dec[:, 0])
    np.testing.assert_allclose(dec[order], boxes[[1, 0]], atol=1e-4)


def test_camera_targets_round_trip():
    boxes = np.array([[100, 50, 140, 80], [300, 60, 330, 100]], np.float32)
    heat, reg, mask, weight = camera_targets(boxes, np.zeros(2, np.int16), np.array([False, False]), (144, 384))
    dec, labels, scores = decode_camera(heat, reg, DecodeConfig())
    np.testing.assert_allclose(dec[np.argsort(dec[:, 0])], boxes, atol=1e-3)
    assert (scores == 1.0).all() and weight.min() == 1.0
