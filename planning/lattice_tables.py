"""Per-configuration constants of the lattice planner, built once and carried in the planner state.

Both candidate families are linear in their boundary conditions:
- lateral quintic (d0, d0', d0'', d1) with zero end velocity and acceleration;
- longitudinal quartic (s0, v0, a0, v1) with zero end acceleration;
so for every horizon the whole profile (position, velocity, acceleration, jerk over the plan's time
grid) is a fixed (4K x 4) matrix times the boundary vector. These matrices, the time grids and the
candidate index layout depend on the configuration alone: building them per plan would repeat the
same polynomial algebra ten times a second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planning.polynomials import basis, quartic_coeffs, quintic_coeffs
from planning.prediction import PredictionGrid, prediction_grid


@dataclass(frozen=True, slots=True)
class LatticeTables:
    key: tuple  # the configuration values the tables were built from
    t_s: np.ndarray  # (K,) plan time grid
    dt_s: float
    horizons_s: np.ndarray  # (n_T,)
    levels_mps2: np.ndarray  # (n_v,) average accelerations of the longitudinal family
    offsets_m: np.ndarray  # (n_o,) lateral offsets around a lane centre
    lane_slot: np.ndarray  # (3 * n_o,) lane slot (right, own, left) of each lateral target
    rollout_in_lane: np.ndarray  # (3 * n_o, 3, 1) bool: lane j's ACC roll-out pairs with targets in lane j only
    lat_map: np.ndarray  # (n_T, 4, K, 4): [x, v, a, j] profiles per unit of (d0, d0', d0'', d1)
    lon_map: np.ndarray  # (4, 4, n_T, K): per unit of (s0, v0, a0, v1), [x, v, a, j] profiles
    # (4, n_T, n_T * K): lon_map's end-speed column laid out block-diagonally (horizon h's profile
    # in block h of row h), so that end speeds (n_v, n_T) times it is every level's end-speed term
    # in one matrix product, written in the family's (level, horizon, time) layout.
    lon_end_speed_blocks: np.ndarray
    t_ref_s: np.ndarray  # (R,) coarse grid of the per-lane ACC reference roll-outs
    interp_ref: np.ndarray  # (K, R) linear interpolation from that grid onto t_s
    ref_step_s: float
    prediction: PredictionGrid  # the prediction's per-grid constants (cfg.prediction on t_s)

    @property
    def steps(self) -> int:
        return int(self.t_s.shape[0])


def tables_key(cfg) -> tuple:
    return (cfg.acc.horizon_s, cfg.acc.step_s, tuple(cfg.horizons_s), cfg.num_accel_levels,
            cfg.min_accel_level_mps2, cfg.max_accel_level_mps2, tuple(cfg.lateral_offsets_m),
            cfg.reference_step_s, cfg.prediction)


def _linear_map(coeffs_of_unit, horizons_s: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """(n_T, 4, K, 4): profiles of each derivative for each unit boundary condition."""
    bases = np.stack(basis(horizons_s, t_s), axis=1)  # (n_T, 4, K, 6)
    cols = [np.einsum("tdki,ti->tdk", bases, coeffs_of_unit(i)) for i in range(4)]
    return np.ascontiguousarray(np.stack(cols, axis=-1))


def build_tables(cfg) -> LatticeTables:
    """``cfg``: a LatticeConfig."""
    steps = int(round(cfg.acc.horizon_s / cfg.acc.step_s)) + 1
    t_s = np.arange(steps) * cfg.acc.step_s
    horizons = np.asarray(cfg.horizons_s, dtype=np.float64)
    n_T = horizons.shape[0]
    zeros = np.zeros(n_T)

    def lat_unit(i: int) -> np.ndarray:
        e = [0.0, 0.0, 0.0, 0.0]
        e[i] = 1.0
        return quintic_coeffs(e[0], e[1], e[2], np.full(n_T, e[3]), zeros, zeros, horizons)

    def lon_unit(i: int) -> np.ndarray:
        e = [0.0, 0.0, 0.0, 0.0]
        e[i] = 1.0
        return quartic_coeffs(e[0], e[1], e[2], np.full(n_T, e[3]), zeros, horizons)

    lon_map = np.ascontiguousarray(_linear_map(lon_unit, horizons, t_s).transpose(3, 1, 0, 2))
    blocks = np.zeros((4, n_T, n_T, steps))
    blocks[:, np.arange(n_T), np.arange(n_T)] = lon_map[3]
    offsets = np.asarray(cfg.lateral_offsets_m, dtype=np.float64)
    lane_slot = np.repeat(np.arange(3), offsets.shape[0])
    ref_steps = int(math.ceil(t_s[-1] / cfg.reference_step_s - 1e-9)) + 1
    t_ref = np.arange(ref_steps) * cfg.reference_step_s
    # Column r of the identity interpolated at t_s is the weight of reference sample r.
    interp_ref = np.stack([np.interp(t_s, t_ref, e) for e in np.eye(ref_steps)], axis=1)
    return LatticeTables(
        key=tables_key(cfg), t_s=t_s, dt_s=float(cfg.acc.step_s), horizons_s=horizons,
        levels_mps2=np.linspace(cfg.min_accel_level_mps2, cfg.max_accel_level_mps2, cfg.num_accel_levels),
        offsets_m=offsets, lane_slot=lane_slot, rollout_in_lane=(lane_slot[:, None] == np.arange(3))[:, :, None],
        lat_map=_linear_map(lat_unit, horizons, t_s), lon_map=lon_map,
        lon_end_speed_blocks=blocks.reshape(4, n_T, n_T * steps),
        t_ref_s=t_ref, interp_ref=interp_ref, ref_step_s=float(cfg.reference_step_s),
        prediction=prediction_grid(t_s, cfg.prediction))


def tables_for(tables: LatticeTables | None, cfg) -> LatticeTables:
    """The tables carried in the state if they match ``cfg``, else freshly built ones."""
    if tables is not None and tables.key == tables_key(cfg):
        return tables
    return build_tables(cfg)
