"""Vehicle parameters shared by the simulated ego (sim/) and the controllers (control/)."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config import rng


@dataclass(frozen=True, slots=True)
class VehicleParams:
    wheelbase_m: float = field(default=2.8, metadata=rng(1.0, 6.0))
    length_m: float = field(default=4.6, metadata=rng(1.0, 20.0))
    width_m: float = field(default=1.9, metadata=rng(0.5, 3.5))
    height_m: float = field(default=1.5, metadata=rng(0.5, 5.0))
    rear_axle_to_center_m: float = field(default=1.4, metadata=rng(0.0, 10.0))  # along x
    max_accel_mps2: float = field(default=3.0, metadata=rng(0.1, 10.0))
    max_decel_mps2: float = field(default=8.0, metadata=rng(0.1, 12.0))  # positive number
    max_jerk_mps3: float = field(default=15.0, metadata=rng(0.1, 100.0))  # actuator limit
    max_steer_rad: float = field(default=0.55, metadata=rng(0.05, 1.2))
    max_steer_rate_rps: float = field(default=0.8, metadata=rng(0.05, 10.0))
    accel_lag_s: float = field(default=0.2, metadata=rng(0.0, 2.0))  # first-order actuator lag
    steer_lag_s: float = field(default=0.05, metadata=rng(0.0, 2.0))
    # Drive-by-wire command watchdog (sim/drive_by_wire.py): no command for this long [s] and the
    # vehicle brakes on its own at fallback_decel_mps2, latched. Ten control periods at 100 Hz.
    command_timeout_s: float = field(default=0.1, metadata=rng(0.01, 2.0))
    fallback_decel_mps2: float = field(default=6.0, metadata=rng(0.5, 12.0))
