"""The sensor rig: schedules every sensor, renders its message from ground truth, stamps it with
the sensor's clock, delays it by latency and jitter, and passes it through the faults.

Determinism: each sensor owns generators derived from (seed, sensor name) alone, so adding,
removing or reordering sensors never changes another sensor's noise, and the same seed and truth
give bit-identical messages.
"""
from __future__ import annotations

import zlib

import numpy as np

from core.clock import s_to_ns
from core.road import Road
from sim.faults import FaultSpec, FaultState, StreamCounters, apply_faults, noise_multiplier
from sim.sensors.arrival import Arrival
from sim.sensors.camera import CameraModel
from sim.sensors.config import SENSOR_NAMES, SensorBase, SensorRigConfig
from sim.sensors.ego_sensors import ImuBias, gnss_fix, imu_sample, wheel_speed
from sim.sensors.frames import to_vehicle_frame
from sim.sensors.lidar import LidarModel
from sim.sensors.radar import RadarModel
from sim.truth import ActorsTruth, EgoTruth


def sensor_seed_sequence(seed: int, sensor: str) -> np.random.SeedSequence:
    """The sensor's root SeedSequence, keyed by a stable hash of its name (not its position)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(sensor.encode())])


def jitter_ns(cfg: SensorBase, rng: np.random.Generator) -> int:
    """A draw in [0, jitter_s]: uniform, or a half-normal (sigma jitter_s / 2) truncated at jitter_s."""
    if cfg.jitter_s <= 0.0:
        return 0
    if cfg.jitter_dist == "uniform":
        j = rng.uniform(0.0, cfg.jitter_s)
    else:
        j = min(abs(rng.normal(0.0, 0.5 * cfg.jitter_s)), cfg.jitter_s)
    return s_to_ns(j)


class SensorRig:
    def __init__(self, cfg: SensorRigConfig, road: Road, seed: int,
                 faults: tuple[FaultSpec, ...] = ()) -> None:
        self.cfg, self.road = cfg, road
        self.sensors = tuple(s for s in SENSOR_NAMES if s in cfg.enabled)
        self.faults = tuple(f for f in faults if not f.is_stage)
        unknown = sorted({f.target for f in self.faults} - set(self.sensors))
        if unknown:
            raise ValueError(f"faults address disabled sensor(s) {', '.join(unknown)}; enabled: {', '.join(self.sensors)}")
        self._noise_rng, self._timing_rng, self._fault_rng = {}, {}, {}
        self._next_ns, self._last_arrival_ns, self._fault_state = {}, {}, {}
        static_seed = {}
        for name in self.sensors:
            noise, timing, fault, static = sensor_seed_sequence(seed, name).spawn(4)
            self._noise_rng[name] = np.random.default_rng(noise)
            self._timing_rng[name] = np.random.default_rng(timing)
            self._fault_rng[name] = np.random.default_rng(fault)
            static_seed[name] = static
            sc = cfg.sensor(name)
            self._next_ns[name] = s_to_ns(sc.phase_s)
            self._last_arrival_ns[name] = -(1 << 62)
            self._fault_state[name] = FaultState(max_latency_ns=s_to_ns(sc.latency_s) + s_to_ns(sc.jitter_s))
        self.camera = CameraModel(cfg.camera, road, int(static_seed["camera"].generate_state(1)[0])) \
            if "camera" in self.sensors else None
        self.lidar = LidarModel(cfg.lidar) if "lidar" in self.sensors else None
        self.radar = RadarModel(cfg.radar) if "radar" in self.sensors else None
        self.imu_bias = ImuBias.draw(cfg.imu, np.random.default_rng(static_seed["imu"])) \
            if "imu" in self.sensors else None

    def next_capture_ns(self, sensor: str) -> int:
        """The next scheduled capture time of ``sensor`` on the simulation clock."""
        return self._next_ns[sensor]

    def counters(self) -> dict[str, dict[str, int]]:
        """Per stream: messages, dropped, late, nonfinite, faulted (JSON-ready)."""
        return {name: self._fault_state[name].counters.as_dict() for name in self.sensors}

    def stream_counters(self, sensor: str) -> StreamCounters:
        return self._fault_state[sensor].counters

    def capture(self, sensor: str, t_capture_ns: int, ego: EgoTruth, actors: ActorsTruth) -> list[Arrival]:
        """Capture ``sensor`` at ``t_capture_ns`` from the truth at that instant; returns the arrivals
        it causes (none when a fault drops it) and schedules the next capture one period later."""
        if sensor not in self._next_ns:
            raise KeyError(f"unknown or disabled sensor '{sensor}'; enabled: {', '.join(self.sensors)}")
        sc = self.cfg.sensor(sensor)
        t_capture_ns = int(t_capture_ns)
        self._next_ns[sensor] = t_capture_ns + sc.period_ns
        t_msg = t_capture_ns + s_to_ns(sc.clock_offset_s)
        k = noise_multiplier(self.faults, sensor, t_capture_ns)
        message, truth = self._measure(sensor, t_msg, ego, actors, self._noise_rng[sensor], k)
        arrival_ns = t_capture_ns + s_to_ns(sc.latency_s) + jitter_ns(sc, self._timing_rng[sensor])
        # A sensor link delivers in order: jitter never lets a message overtake its predecessor.
        arrival_ns = max(arrival_ns, self._last_arrival_ns[sensor])
        self._last_arrival_ns[sensor] = arrival_ns
        state, out = apply_faults(Arrival(arrival_ns, sensor, message, t_capture_ns, truth), self.faults,
                                  self._fault_rng[sensor], self._fault_state[sensor])
        self._fault_state[sensor] = state
        return out

    def _measure(self, sensor: str, t_ns: int, ego: EgoTruth, actors: ActorsTruth,
                 rng: np.random.Generator, k: float):
        cfg = self.cfg
        if sensor in ("camera", "lidar", "radar"):
            local = to_vehicle_frame(ego, actors)
            if sensor == "camera":
                return self.camera.render(t_ns, ego, local, rng, k)
            if sensor == "lidar":
                return self.lidar.scan(t_ns, ego, local, rng, k)
            return self.radar.scan(t_ns, ego, local, rng, k)
        if sensor == "imu":
            return imu_sample(cfg.imu, t_ns, ego, self.imu_bias, rng, k), None
        if sensor == "wheel":
            return wheel_speed(cfg.wheel, t_ns, ego, rng, k), None
        return gnss_fix(cfg.gnss, t_ns, ego, rng, k), None
