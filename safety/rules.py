"""The default degradation policy: the table itself (data, read by the monitor and by the tests).

Object sensors: camera, lidar, radar (and the oracle object stream of simulation runs). Ego
sensors: imu, wheel, gnss (and the oracle ego stream when the simulated sensors are off). One sensor
lost costs redundancy (DEGRADED); two of a kind lost leaves no cross-check (MINIMAL_RISK). Flags are
named health conditions the stack computes; ``picture.*`` flags are held from the last fresh picture.
A frozen sensor (fresh messages repeating the same data) counts as lost; ``<sensor>.frozen`` says why.
"""
from __future__ import annotations

from core.messages import Mode
from safety.policy import PolicyRule

OBJECT_SENSORS = ("camera", "lidar", "radar")
EGO_SENSORS = ("imu", "wheel", "gnss")
# Streams that refresh the object picture; while none is alive, picture.* flags are held.
OBJECT_STREAMS = OBJECT_SENSORS + ("oracle",)
EGO_STREAMS = EGO_SENSORS + ("ego",)  # the oracle ego stream stands in for the three

DEG, MRM, ESTOP = Mode.DEGRADED, Mode.MINIMAL_RISK, Mode.EMERGENCY_STOP

DEFAULT_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(DEG, "lidar lost", streams=("lidar",)),
    PolicyRule(DEG, "camera lost", streams=("camera",)),
    PolicyRule(DEG, "radar lost", streams=("radar",)),
    PolicyRule(MRM, "two of three object sensors lost", streams=OBJECT_SENSORS, min_lost=2),
    PolicyRule(MRM, "all object sensors lost", streams=OBJECT_SENSORS, min_lost=3),
    PolicyRule(ESTOP, "all object sensors lost with an obstacle close ahead", streams=OBJECT_SENSORS,
               min_lost=3, flag="picture.obstacle_close_ahead"),
    PolicyRule(MRM, "oracle object stream lost", streams=("oracle",)),
    PolicyRule(DEG, "imu lost", streams=("imu",)),
    PolicyRule(DEG, "wheel odometry lost", streams=("wheel",)),
    PolicyRule(DEG, "gnss lost: dead reckoning", streams=("gnss",)),
    PolicyRule(MRM, "ego localisation lost: two of three ego sensors lost", streams=EGO_SENSORS, min_lost=2),
    PolicyRule(MRM, "ego localisation lost", streams=("ego",)),
    # A frozen stream counts as lost in the rules above; these name the cause in the reason.
    *(PolicyRule(DEG, f"{name} frozen: it repeats its last data", flag=f"{name}.frozen")
      for name in OBJECT_SENSORS + EGO_SENSORS),
    *(PolicyRule(DEG, f"{name} refused: the ego filter rejects its data", flag=f"{name}.refused")
      for name in EGO_SENSORS),
    *(PolicyRule(DEG, f"{name} inconsistent: its innovations exceed its noise", flag=f"{name}.inconsistent")
      for name in EGO_SENSORS),
    PolicyRule(MRM, "ego localisation lost: position uncertainty over its limit", flag="localisation.lost"),
    PolicyRule(MRM, "ego localisation lost: heading uncertainty over its limit", flag="localisation.heading_lost"),
    PolicyRule(DEG, "a stream's rate is out of tolerance", flag="stream.rate_low"),
    PolicyRule(DEG, "a stream delivers non-finite or malformed data", flag="stream.bad_data"),
    PolicyRule(DEG, "a detector reports itself unhealthy", flag="detector.unhealthy"),
    PolicyRule(DEG, "a stage missed deadlines in its window", flag="stage.deadline_window"),
    PolicyRule(MRM, "planner missed 3 deadlines in a row", flag="planning.missed_3"),
    # Every periodic stage is watched alike: a stage that misses (or hangs) run after run has failed.
    PolicyRule(MRM, "fusion missed 3 deadlines in a row", flag="fusion.missed_3"),
    PolicyRule(MRM, "control missed 3 deadlines in a row", flag="control.missed_3"),
    PolicyRule(MRM, "safety monitor missed 3 deadlines in a row", flag="safety.missed_3"),
    PolicyRule(MRM, "a stage raised an exception", flag="stage.exception"),
    PolicyRule(MRM, "a stage produced non-finite output", flag="stage.nonfinite"),
    PolicyRule(MRM, "loop heartbeat late", flag="loop.heartbeat_late"),
    PolicyRule(ESTOP, "control input older than its timeout", flag="control.stale_input"),
)
