"""Lidar box refinement: centres anchored on the faces the sensor sees."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.box_refine import BoxRefineConfig, refine_boxes

CFG = BoxRefineConfig()  # sensor at (1.4, 0) in the vehicle frame


def face_points(x0, x1, y0, y1, n=40, z=(0.4, 1.4)):
    """Points spread on the segment (x0, y0)-(x1, y1) at a few heights, plus ground returns."""
    t = np.linspace(0.0, 1.0, n)
    xy = np.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t], axis=1)
    pts = [np.column_stack([xy, np.full(n, h)]) for h in np.linspace(*z, 3)]
    ground = np.column_stack([xy, np.zeros(n)])  # must not count: below min_height_m
    return np.concatenate(pts + [ground]).astype(np.float32)


def box(x, y, l=4.6, w=1.9, yaw=0.0):
    return np.array([[x, y, 0.8, l, w, 1.5, yaw]], np.float32)


def test_car_alongside_moves_out_onto_its_visible_side():
    # True car centred at (0, -4.4): its near side, the only one the lidar sees, lies at y = -3.45.
    pts = face_points(-2.3, 2.3, -3.45, -3.45)
    refined, moved = refine_boxes(box(0.2, -3.1), pts, CFG)  # the network placed it 1.3 m inwards
    assert moved == 1
    assert refined[0, 1] == pytest.approx(-3.45 - 0.95, abs=1e-5)
    assert refined[0, 0] == pytest.approx(0.2, abs=1e-6)  # seen side-on: its length axis keeps the estimate
    assert np.array_equal(refined[0, 2:], box(0.2, -3.1)[0, 2:])  # size, yaw, height untouched


def test_car_ahead_anchored_on_its_rear_face():
    # A car straight ahead (rear face at x = 20 seen from the sensor at x = 1.4).
    pts = face_points(20.0, 20.0, -0.9, 0.9)
    refined, moved = refine_boxes(box(22.0, 0.1), pts, CFG)
    assert moved == 1
    assert refined[0, 0] == pytest.approx(20.0 + 2.3, abs=1e-5)
    assert refined[0, 1] == pytest.approx(0.1, abs=1e-6)  # seen across its width: y keeps the estimate


def test_rotated_box_moves_along_its_own_axes():
    yaw = 0.3
    c, s = np.cos(yaw), np.sin(yaw)
    centre = np.array([15.0, 8.0])
    # Its rear face (local u = -2.3) and right side (local v = -0.95) face the sensor.
    rear = centre + np.outer(np.linspace(-0.95, 0.95, 30), [-s, c]) + (-2.3) * np.array([c, s])
    side = centre + np.outer(np.linspace(-2.3, 2.3, 30), [c, s]) + (-0.95) * np.array([-s, c])
    pts = np.concatenate([np.column_stack([p, np.full(len(p), 1.0)]) for p in (rear, side)]).astype(np.float32)
    guess = centre + 0.4 * np.array([c, s]) + 0.5 * np.array([-s, c])  # off along both box axes
    refined, _ = refine_boxes(box(*guess, yaw=yaw), pts, CFG)
    assert refined[0, :2] == pytest.approx(centre, abs=1e-4)


def test_too_few_points_or_too_far_a_move_keeps_the_network_box():
    few = face_points(-2.3, 2.3, -3.45, -3.45, n=2)[:4]
    assert refine_boxes(box(0.2, -3.1), few, CFG)[1] == 0
    far = face_points(-2.3, 2.3, -3.45, -3.45)
    strict = dataclasses.replace(CFG, max_shift_m=0.5)  # the 1.35 m move is refused
    refined, moved = refine_boxes(box(0.2, -3.1), far, strict)
    assert moved == 0 and np.array_equal(refined, box(0.2, -3.1))


def test_disabled_empty_and_pointless_inputs():
    pts = face_points(-2.3, 2.3, -3.45, -3.45)
    off = dataclasses.replace(CFG, enabled=False)
    assert np.array_equal(refine_boxes(box(0.2, -3.1), pts, off)[0], box(0.2, -3.1))
    empty = np.zeros((0, 7), np.float32)
    assert refine_boxes(empty, pts, CFG)[0].shape == (0, 7)
    ground_only = face_points(-2.3, 2.3, -3.45, -3.45, z=(0.0, 0.1))
    assert refine_boxes(box(0.2, -3.1), ground_only, CFG)[1] == 0


def test_each_box_uses_only_its_own_points():
    # Two cars, each in its own lane and each with its network box off by 0.4 m towards the ego.
    pts = np.concatenate([face_points(-2.3, 2.3, -3.45, -3.45), face_points(10.0, 14.6, 3.45, 3.45)])
    boxes = np.concatenate([box(0.0, -4.0), box(12.3, 4.0)])
    refined, moved = refine_boxes(boxes, pts, CFG)
    assert moved == 2
    assert refined[:, 1] == pytest.approx([-4.4, 4.4], abs=1e-5)
