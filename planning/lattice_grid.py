"""Candidate families of the Frenet lattice: lateral quintics (targets x horizons) and longitudinal
quartics (speed levels x horizons), evaluated on the plan's time grid. A candidate is a triple
(lateral target, speed level, horizon); everything that depends on only one family is computed once
per family, not per candidate (the feasibility masks and cost terms: planning/lattice_bounds.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.records import fast_frozen_init
from planning.polynomials import evaluate_grid, quartic_coeffs, quintic_coeffs


@fast_frozen_init  # built every plan (core/records.py)
@dataclass(frozen=True, slots=True)
class Family:
    """Profiles of one axis in one buffer (4, M, n_T, K): position, velocity, acceleration, jerk."""

    xvaj: np.ndarray

    @property
    def x(self) -> np.ndarray:
        return self.xvaj[0]

    @property
    def v(self) -> np.ndarray:
        return self.xvaj[1]

    @property
    def a(self) -> np.ndarray:
        return self.xvaj[2]

    @property
    def j(self) -> np.ndarray:
        return self.xvaj[3]


def lateral_family(d0: float, dd0: float, ddd0: float, d_targets: np.ndarray, horizons_s: np.ndarray,
                   t_s: np.ndarray) -> Family:
    n_d, n_T = d_targets.shape[0], horizons_s.shape[0]
    tgt = np.repeat(d_targets, n_T)
    T = np.tile(horizons_s, n_d)
    c = quintic_coeffs(d0, dd0, ddd0, tgt, np.zeros_like(tgt), np.zeros_like(tgt), T)
    return Family(np.stack(evaluate_grid(c.reshape(n_d, n_T, 6), horizons_s, t_s)))


def longitudinal_family(s0: float, v0: float, a0: float, accel_levels_mps2: np.ndarray, horizons_s: np.ndarray,
                        v_max_mps: float, t_s: np.ndarray) -> tuple[Family, np.ndarray]:
    """Speed targets v0 + level * T clipped to [0, v_max]: each level is an average acceleration, so
    one grid spans hard braking to acceleration for every horizon. Returns the family and the
    target speeds (n_v, n_T)."""
    n_v, n_T = accel_levels_mps2.shape[0], horizons_s.shape[0]
    v_tgt = np.clip(v0 + accel_levels_mps2[:, None] * horizons_s[None, :], 0.0, v_max_mps)
    T = np.tile(horizons_s, n_v)
    c = quartic_coeffs(s0, v0, a0, v_tgt.ravel(), np.zeros(n_v * n_T), T)
    return Family(np.stack(evaluate_grid(c.reshape(n_v, n_T, 6), horizons_s, t_s))), v_tgt


def lateral_family_tabled(lat_map: np.ndarray, d0: float, dd0: float, ddd0: float,
                          d_targets: np.ndarray) -> Family:
    """As ``lateral_family``, from the precomputed linear map of LatticeTables: one product
    (n_T * 4K, 4) @ (4, n_d), the targets being the same for every horizon."""
    n_T, _, K, _ = lat_map.shape
    n_d = d_targets.shape[0]
    bc = np.empty((4, n_d))
    bc[0], bc[1], bc[2], bc[3] = d0, dd0, ddd0, d_targets
    prof = (lat_map.reshape(n_T * 4 * K, 4) @ bc).reshape(n_T, 4, K, n_d).transpose(1, 3, 0, 2)
    return Family(np.ascontiguousarray(prof))  # (4, n_d, n_T, K)
