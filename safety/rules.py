"""The default degradation policy: the table itself (data, read by the monitor and by the tests).

Object sensors: camera, lidar, radar (and the oracle object stream of simulation runs). Ego
sensors: imu, wheel, gnss (and the oracle ego stream when the simulated sensors are off). One sensor
lost costs redundancy (DEGRADED); two of a kind lost leaves no cross-check (MINIMAL_RISK). Flags are
named health conditions the stack computes; ``picture.*`` flags are held from the last fresh picture.
A frozen sensor (fresh messages repeating the same data) counts as lost; ``<sensor>.frozen`` says why.
"""
from __future__ import annotations

from core.messages import Mode
from safety.policy import PolicyRule, PolicyTable

OBJECT_SENSORS = ("camera", "lidar", "radar")
EGO_SENSORS = ("imu", "wheel", "gnss")
# Streams that refresh the object picture; while none is alive, picture.* flags are held.
OBJECT_STREAMS = OBJECT_SENSORS + ("oracle",)
EGO_STREAMS = EGO_SENSORS + ("ego",)  # the oracle ego stream stands in for the three

DEG, MRM, ESTOP = Mode.DEGRADED, Mode.MINIMAL_RISK, Mode.EMERGENCY_STOP

# A car that no longer knows where it is stops sooner than MINIMAL_RISK's comfortable 2 m/s^2: every
# metre is dead-reckoned, and the lateral error grows with the distance (a 0.007-0.017 rad heading
# error). GNSS lost on cut_in: the 2 m/s^2 stop took 12 s from 23 m/s and ended 2.64 m off the
# centre of the lane it began in; at 3.5 m/s^2, 8 s and 2.0 m. Within the 4 m/s^2 that UN R157
# (5.5.1) aims a minimal-risk manoeuvre's deceleration at.
LOCALISATION_LOST_STOP_DECEL_MPS2 = 3.5

DEFAULT_RULES: tuple[PolicyRule, ...] = PolicyTable((
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
    PolicyRule(MRM, "ego localisation lost: two of three ego sensors lost", streams=EGO_SENSORS, min_lost=2,
               stop_decel_mps2=LOCALISATION_LOST_STOP_DECEL_MPS2),
    PolicyRule(MRM, "ego localisation lost", streams=("ego",),
               stop_decel_mps2=LOCALISATION_LOST_STOP_DECEL_MPS2),
    # A frozen stream counts as lost in the rules above; these name the cause in the reason.
    *(PolicyRule(DEG, f"{name} frozen: it repeats its last data", flag=f"{name}.frozen")
      for name in OBJECT_SENSORS + EGO_SENSORS),
    *(PolicyRule(DEG, f"{name} refused: the ego filter rejects its data", flag=f"{name}.refused")
      for name in EGO_SENSORS),
    *(PolicyRule(DEG, f"{name} inconsistent: its innovations exceed its noise", flag=f"{name}.inconsistent")
      for name in EGO_SENSORS),
    *(PolicyRule(DEG, f"{name} detector missed 3 runs in a row: no detections", flag=f"{name}.detector_missed")
      for name in OBJECT_SENSORS),
    PolicyRule(MRM, "ego localisation lost: position uncertainty over its limit", flag="localisation.lost",
               stop_decel_mps2=LOCALISATION_LOST_STOP_DECEL_MPS2),
    # Not when the heading alone is lost (the IMU gone): that stop weaves, and a firmer one (3.5 m/s^2,
    # curve, imu:dropout@5) peaked at -5.3 m/s^2 braking against -3.0 at MINIMAL_RISK's 2 m/s^2, for
    # 0.7 m/s^2 less lateral weave.
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
))
