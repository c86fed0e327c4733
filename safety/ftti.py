"""The FTTI table: for each fault, the worst-case detection time plus reaction time, held against
its fault tolerant time interval.

The bounds are derived, not measured: from the streams' periods, latencies and jitter, the
liveness rule (lost after N periods without a fresh message), and the rates of the monitor, the
planner and the controller. Detection ends when the monitor's mode changes; reaction ends when a
command shaped by the new mode leaves the controller (the next plan under the new limits, then
the next control run; in EMERGENCY_STOP the controller's arbitration acts directly).
"""
from __future__ import annotations

from dataclasses import dataclass

from core.messages import Mode


@dataclass(frozen=True, slots=True)
class StreamTiming:
    period_s: float
    latency_s: float
    jitter_s: float = 0.0
    max_repeats: int = 0  # the freeze rule's (safety/health.py FreezeConfig); 0: not watched


@dataclass(frozen=True, slots=True)
class LoopTiming:
    monitor_period_s: float = 0.01
    fusion_period_s: float = 0.02
    planning_period_s: float = 0.1
    control_period_s: float = 0.01
    max_missed_periods: float = 3.0
    control_timeout_s: float = 0.1
    heartbeat_timeout_s: float = 0.1


@dataclass(frozen=True, slots=True)
class FttiEntry:
    fault: str
    mode: Mode  # what the policy table demands for it
    ftti_s: float
    # How the fault is detected: "streams" (the named streams stop; detected when the last of them
    # is declared lost), "localisation" (the EKF's position or heading sigma crosses its limit), "planner_misses"
    # (3 deadline misses in a row), "stale_input", "stage_event" (exception or non-finite output of
    # the planner, the slowest periodic stage), "heartbeat" (the loop stalls), "frozen" (the named
    # stream keeps coming but repeats its data: lost once max_repeats messages in a row repeat).
    detection: str
    streams: tuple[str, ...] = ()


# Intervals: object sensors 0.5 s (10 m at 20 m/s, inside the 1.5 s headway the planner keeps);
# ego dead-reckoning sensors 1.0 s (position uncertainty grows ~0.25 m/s without GNSS, and the
# localisation rule escalates on its own); stage faults 0.5 s; a control input past its 100 ms
# timeout 0.2 s (the actuators hold the last command meanwhile).
FTTI_TABLE: tuple[FttiEntry, ...] = (
    FttiEntry("lidar lost", Mode.DEGRADED, 0.5, "streams", ("lidar",)),
    FttiEntry("camera lost", Mode.DEGRADED, 0.5, "streams", ("camera",)),
    FttiEntry("radar lost", Mode.DEGRADED, 0.5, "streams", ("radar",)),
    FttiEntry("camera and lidar lost", Mode.MINIMAL_RISK, 0.5, "streams", ("camera", "lidar")),
    FttiEntry("lidar and radar lost", Mode.MINIMAL_RISK, 0.5, "streams", ("lidar", "radar")),
    FttiEntry("camera and radar lost", Mode.MINIMAL_RISK, 0.5, "streams", ("camera", "radar")),
    FttiEntry("all object sensors lost", Mode.MINIMAL_RISK, 0.5, "streams", ("camera", "lidar", "radar")),
    FttiEntry("imu lost", Mode.DEGRADED, 1.0, "streams", ("imu",)),
    FttiEntry("wheel odometry lost", Mode.DEGRADED, 1.0, "streams", ("wheel",)),
    FttiEntry("gnss lost", Mode.DEGRADED, 1.0, "streams", ("gnss",)),
    FttiEntry("imu and wheel lost", Mode.MINIMAL_RISK, 0.5, "streams", ("imu", "wheel")),
    # A frozen stream counts as lost (safety/health.py): the same modes and intervals as its loss.
    FttiEntry("lidar frozen", Mode.DEGRADED, 0.5, "frozen", ("lidar",)),
    FttiEntry("camera frozen", Mode.DEGRADED, 0.5, "frozen", ("camera",)),
    FttiEntry("radar frozen", Mode.DEGRADED, 0.5, "frozen", ("radar",)),
    FttiEntry("imu frozen", Mode.DEGRADED, 1.0, "frozen", ("imu",)),
    FttiEntry("wheel odometry frozen", Mode.DEGRADED, 1.0, "frozen", ("wheel",)),
    FttiEntry("gnss frozen", Mode.DEGRADED, 1.0, "frozen", ("gnss",)),
    FttiEntry("localisation lost", Mode.MINIMAL_RISK, 0.5, "localisation"),
    FttiEntry("heading lost", Mode.MINIMAL_RISK, 0.5, "localisation"),
    FttiEntry("planner misses 3 deadlines", Mode.MINIMAL_RISK, 0.5, "planner_misses"),
    FttiEntry("stage exception", Mode.MINIMAL_RISK, 0.5, "stage_event"),
    FttiEntry("loop heartbeat late", Mode.MINIMAL_RISK, 0.5, "heartbeat"),
    FttiEntry("control input stale", Mode.EMERGENCY_STOP, 0.2, "stale_input"),
)


def stream_detection_s(s: StreamTiming, loop: LoopTiming) -> float:
    """The last message captured before the fault arrives at most latency + jitter after it; the
    stream is lost N periods after that arrival, and the monitor sees it at its next run."""
    return s.latency_s + s.jitter_s + loop.max_missed_periods * s.period_s + loop.monitor_period_s


def frozen_detection_s(s: StreamTiming, loop: LoopTiming) -> float:
    """The data freeze after a capture; the next capture, at most a period later, is the first
    repeat, and the max_repeats-th repeat (max_repeats periods later at most) marks the stream
    frozen when it arrives; the monitor sees it at its next run."""
    if s.max_repeats < 1:
        raise ValueError("frozen detection needs a watched stream (max_repeats >= 1)")
    return s.max_repeats * s.period_s + s.latency_s + s.jitter_s + loop.monitor_period_s


def detection_s(entry: FttiEntry, streams: dict[str, StreamTiming], loop: LoopTiming) -> float:
    if entry.detection in ("streams", "frozen"):
        missing = [n for n in entry.streams if n not in streams]
        if missing:
            raise KeyError(f"FTTI entry {entry.fault!r}: no timing for stream(s) {', '.join(missing)}")
        per_stream = stream_detection_s if entry.detection == "streams" else frozen_detection_s
        return max(per_stream(streams[n], loop) for n in entry.streams)
    if entry.detection == "localisation":
        return loop.fusion_period_s + loop.monitor_period_s  # the crossing shows in the next ego estimate
    if entry.detection == "planner_misses":
        return 3 * loop.planning_period_s + loop.monitor_period_s
    if entry.detection == "stage_event":
        return loop.planning_period_s + loop.monitor_period_s
    if entry.detection == "heartbeat":
        return loop.heartbeat_timeout_s + loop.monitor_period_s
    if entry.detection == "stale_input":
        # The ego estimate is stamped up to one fusion period before it is published.
        return loop.control_timeout_s + loop.fusion_period_s + loop.monitor_period_s
    raise ValueError(f"FTTI entry {entry.fault!r}: unknown detection {entry.detection!r}")


def reaction_s(entry: FttiEntry, loop: LoopTiming) -> float:
    if entry.mode == Mode.EMERGENCY_STOP:
        return loop.control_period_s  # arbitration in the controller overrides the plan
    return loop.planning_period_s + loop.control_period_s


def ftti_budget(entry: FttiEntry, streams: dict[str, StreamTiming], loop: LoopTiming) -> tuple[float, float]:
    """(detection, reaction) in seconds; their sum must fit ``entry.ftti_s``."""
    return detection_s(entry, streams, loop), reaction_s(entry, loop)
