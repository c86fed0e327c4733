import numpy as np
import pytest

from perception.bev import BevGridConfig, encode_bev, sanitize_cloud

GRID = BevGridConfig(x_min_m=-2.0, x_max_m=2.0, y_min_m=-1.0, y_max_m=1.0, cell_m=0.5, z_min_m=0.0, z_max_m=4.0,
                     density_norm=3.0)


def test_cells_hold_max_height_density_and_mean_intensity():
    pts = np.array([[0.1, 0.1, 1.0], [0.2, 0.3, 3.0], [0.4, 0.4, 2.0],  # cell (4, 2): 3 points
                    [-1.9, -0.9, 0.4],  # cell (0, 0)
                    [5.0, 0.0, 1.0], [0.0, 0.0, 9.0]], np.float32)  # outside x, above z_max: dropped
    inten = np.array([0.2, 0.4, 0.6, 1.0, 1.0, 1.0], np.float32)
    bev = encode_bev(pts, inten, GRID)
    assert bev.shape == (3, 8, 4) and bev.dtype == np.float32
    assert bev[0, 4, 2] == pytest.approx(3.0 / 4.0)
    assert bev[1, 4, 2] == pytest.approx(1.0)  # log1p(3) / log1p(3)
    assert bev[2, 4, 2] == pytest.approx(0.4)
    assert bev[0, 0, 0] == pytest.approx(0.1)
    assert bev[2, 0, 0] == pytest.approx(1.0)
    occupied = bev[1] > 0
    assert occupied.sum() == 2  # the two out-of-grid points left no trace


def test_empty_cloud_encodes_to_zeros():
    bev = encode_bev(np.zeros((0, 3), np.float32), np.zeros(0, np.float32), GRID)
    assert bev.shape == (3, 8, 4) and not bev.any()


def test_sanitize_removes_and_counts_nonfinite_points():
    pts = np.array([[1, 2, 3], [np.nan, 0, 0], [0, np.inf, 0], [4, 5, 6]], np.float32)
    inten = np.array([0.5, 0.5, 0.5, np.nan], np.float32)
    clean = sanitize_cloud(pts, inten)
    assert clean.removed == 3
    np.testing.assert_array_equal(clean.points, [[1, 2, 3]])
    assert np.isfinite(clean.points).all()


def test_sanitize_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        sanitize_cloud(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="intensity"):
        sanitize_cloud(np.zeros((4, 3)), np.zeros(3))


def test_default_grid_encoding_is_deterministic():
    rng = np.random.default_rng(0)
    pts = rng.uniform([-60, -30, -1], [60, 30, 4], (5000, 3)).astype(np.float32)
    inten = rng.random(5000).astype(np.float32)
    a, b = encode_bev(pts, inten, BevGridConfig()), encode_bev(pts, inten, BevGridConfig())
    assert a.tobytes() == b.tobytes()
    assert a.shape == (3, BevGridConfig().rows, BevGridConfig().cols)
