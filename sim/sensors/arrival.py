"""What a sensor delivers: a message and the logical time it reaches the stack."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Arrival:
    arrival_ns: int  # when the message reaches the stack (capture + latency + jitter, + faults)
    topic: str  # the sensor name: "camera", "lidar", "radar", "imu", "wheel", "gnss"
    message: Any  # a core.messages sensor message; message.t_ns = capture + clock offset
    capture_ns: int  # true capture time on the simulation clock
    truth: Any = None  # CameraTruth / LidarTruth / RadarTruth for labelled data; None otherwise
