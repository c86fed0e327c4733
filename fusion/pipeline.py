"""The fusion stage: time synchronisation, then the ego EKF and the object tracker, as one pure step.

Every input passes the synchroniser first, so the filters see measurements in timestamp order and
never step backwards; each released message goes to the filter that models it. Ego-sensor messages
(IMU, wheel speed, GNSS) update the ego EKF; object detections update the tracker with the ego pose
predicted to the detection's time: the EKF's odometry pose, so that tracks live in the odometry
frame, untouched by GNSS corrections, and are handed on in the map frame (fusion/odom_frame.py).
An ``EgoState`` input (the oracle ego of planning-only runs) replaces the EKF as the ego source;
its pose is the truth, and the tracks then live in the map frame itself. A backwards clock
restarts both filters (a RESET record).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np

from core.config import rng
from core.records import fast_frozen_init
from core.messages import Detections2D, Detections3D, EgoState, GnssFix, ImuSample, Tracks, WheelSpeed
from fusion.ego_ekf import EgoConfig, EgoFilterState, ego_odom_output, ego_outputs, ego_update, nis_dof
from fusion.odom_frame import tracks_to_map
from fusion.sensor_models import CameraModel, RadarModel
from fusion.sync import Decision, SyncConfig, SyncRecord, SyncState, sync_step
from fusion.tracker import tracker_predict, tracker_update
from fusion.tracker_polar import tracker_update_camera, tracker_update_radar
from fusion.tracker_state import TrackerConfig, TrackerState

_EGO_SENSORS = (ImuSample, WheelSpeed, GnssFix)


@dataclass(frozen=True, slots=True)
class FusionConfig:
    sync: SyncConfig = field(default_factory=SyncConfig)
    ego: EgoConfig = field(default_factory=EgoConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    camera: CameraModel | None = None  # bearing/range model of camera Detections2D; None: not fused
    radar: RadarModel | None = None  # range/azimuth/range-rate model of radar clusters
    # Ego estimates older than this are not handed on (the safety monitor sees the gap).
    max_ego_age_s: float = field(default=0.5, metadata=rng(0.01, 10.0))


class EgoVerdict(NamedTuple):
    """The ego filter's judgement of one ego-sensor message."""
    stream: str
    refused: bool  # by its gates: outside an IMU or wheel motion gate, or a GNSS fix's NIS gate
    # Its normalised innovation squared (NaN where none was judged: the fix that started or
    # re-seeded the filter) and that innovation's degrees of freedom.
    nis: float
    dof: int


@fast_frozen_init  # built every step (core/records.py)
@dataclass(frozen=True, slots=True)
class FusionState:
    sync: SyncState = field(default_factory=SyncState)
    ego_filter: EgoFilterState = field(default_factory=EgoFilterState.empty)
    tracker: TrackerState = field(default_factory=TrackerState.empty)
    oracle_ego: EgoState | None = None
    unused_messages: int = 0  # released messages no filter here models (counted, not silently lost)
    resets: int = 0


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class FusionOutput:
    ego: EgoState | None
    tracks: Tracks
    records: tuple[SyncRecord, ...]  # every apply/drop decision of this step, for logs and replay
    # (stream, t_ns on the stream's own clock, as it arrived) of each message the synchroniser
    # dropped as late or from the future in this step: fusion could not use it, and stream health
    # must not count it (safety/health.py sync_dropped). Duplicates are left out: health never
    # counted them. Derived from ``records``.
    dropped: tuple[tuple[str, int], ...] = ()
    # The ego filter's verdict on each ego-sensor message it judged in this step, in order (a
    # quarantined stream's messages included). A wheel stuck at 0 while the car moves keeps
    # arriving, fresh and finite, and every reading is refused; a receiver gone noisy has most of
    # its fixes pass, each with a large NIS. The stack watches both per stream and quarantines such
    # a stream (safety/ego_streams.py).
    ego_verdicts: tuple[EgoVerdict, ...] = ()


_DROPS_HEALTH_SEES = (Decision.DROPPED_LATE, Decision.DROPPED_FUTURE)


def dropped_messages(records: tuple[SyncRecord, ...], cfg: SyncConfig) -> tuple[tuple[str, int], ...]:
    """The late and future drops among ``records``, as (stream, t_ns on the stream's own clock):
    a record's time is on the stack clock, the stream's clock offset added."""
    streams = cfg.streams
    return tuple((r.stream, r.t_ns - streams[r.stream].clock_offset_ns)
                 for r in records if r.decision in _DROPS_HEALTH_SEES)


def _gate_refusals(counters) -> int:
    return counters.imu_outliers + counters.wheel_outliers + counters.gnss_outliers


def extrapolate_ego(ego: EgoState, t_ns: int) -> EgoState:
    """Constant speed and yaw rate from ``ego.t_ns`` to ``t_ns`` (exact arc), never backwards."""
    elapsed_ns = t_ns - ego.t_ns
    if elapsed_ns <= 0:
        return ego
    dt = elapsed_ns * 1e-9
    x, y, yaw = ego.pose.tolist()  # Python floats, as float() of each element gives
    v, w = ego.speed_mps, ego.yaw_rate_rps
    yaw_new = yaw + w * dt
    if abs(w) > 1e-9:
        radius = v / w
        x += radius * (math.sin(yaw_new) - math.sin(yaw))
        y += radius * (math.cos(yaw) - math.cos(yaw_new))
    else:
        x += v * dt * math.cos(yaw)
        y += v * dt * math.sin(yaw)
    return EgoState(int(t_ns), np.array([x, y, yaw_new]), v, ego.accel_mps2, w, ego.covariance)


def fusion_step(state: FusionState, arrivals: Iterable[tuple[str, Any]], t_ns: int,
                cfg: FusionConfig, quarantined: frozenset[str] = frozenset()) -> tuple[FusionState, FusionOutput]:
    """Take the (stream, message) pairs that arrived since the last step; return the fused picture
    at ``t_ns``: the ego state and the confirmed tracks, both predicted to ``t_ns``.

    ``quarantined``: ego-sensor streams whose messages are judged by the ego filter's gates (the
    verdicts come out as ever) but not applied: the stack quarantines a stream the gates keep
    refusing, for the rest of the run."""
    sync, released, records = sync_step(state.sync, arrivals, t_ns, cfg.sync)
    # The synchroniser's counters say whether this step dropped anything: the records are read
    # only then (nearly never), not once per message.
    dropped = (dropped_messages(records, cfg.sync)
               if sync.late != state.sync.late or sync.future != state.sync.future else ())
    ego_filter, tracker, oracle_ego = state.ego_filter, state.tracker, state.oracle_ego
    unused, resets = state.unused_messages, state.resets
    verdicts = ()  # a tuple that grows in the (nearly never) step with an ego-sensor message
    # The synchroniser counts every RESET record it makes: the counter, not a scan of the records.
    if sync.resets != state.sync.resets:
        ego_filter, tracker, oracle_ego, resets = EgoFilterState.empty(), TrackerState.empty(), None, resets + 1
    for item in released:
        msg = item.msg
        if isinstance(msg, EgoState):  # first: an oracle run's every step (the types are disjoint)
            oracle_ego = msg
        elif isinstance(msg, _EGO_SENSORS):
            before = ego_filter.counters
            ego_filter = ego_update(ego_filter, msg, cfg.ego, item.stream not in quarantined)
            after = ego_filter.counters
            if _gate_refusals(after) != _gate_refusals(before):
                verdicts += (EgoVerdict(item.stream, True, ego_filter.last_nis, nis_dof(msg)),)
            elif after.applied != before.applied or after.quarantined != before.quarantined:
                verdicts += (EgoVerdict(item.stream, False, ego_filter.last_nis, nis_dof(msg)),)
        elif isinstance(msg, (Detections3D, Detections2D)):
            ego = (extrapolate_ego(oracle_ego, msg.t_ns) if oracle_ego is not None
                   else ego_odom_output(ego_filter, msg.t_ns, cfg.ego))
            if ego is None:
                unused += 1  # no ego pose yet to place the detections in the map
            elif isinstance(msg, Detections2D):
                if cfg.camera is None:
                    unused += 1
                else:
                    tracker = tracker_update_camera(tracker, msg, ego, cfg.tracker, cfg.camera)
            elif msg.source == "radar" and cfg.radar is not None:
                tracker = tracker_update_radar(tracker, msg, ego, cfg.tracker, cfg.radar)
            else:
                tracker = tracker_update(tracker, msg, ego, cfg.tracker)
        else:
            unused += 1
    new = FusionState(sync, ego_filter, tracker, oracle_ego, unused, resets)
    if oracle_ego is not None or ego_filter.t_ns is None:
        # Oracle ego (tracks in the map frame already), or no ego yet (and so no tracks either).
        ego = extrapolate_ego(oracle_ego, t_ns) if oracle_ego is not None else None
        tracks = tracker_predict(tracker, t_ns, cfg.tracker)
    else:
        # Both ego poses at the tracks' time (never before the filter's or the tracker's own time)
        # from one prediction; the tracks go from the odometry frame to the map frame there.
        t_out = max(t_ns, ego_filter.t_ns, tracker.t_ns if tracker.t_ns is not None else t_ns)
        ego, ego_odom = ego_outputs(ego_filter, t_out, cfg.ego)
        tracks = tracker_predict(tracker, t_out, cfg.tracker)
        if len(tracks):
            tracks = tracks_to_map(tracks, ego_odom, ego)
    # The age of the ego estimate is that of its newest measurement (the filter's ``measured_ns``:
    # its own time also moves with predictions, e.g. to a GNSS fix the gate rejects; the oracle
    # ego's with each message): the output itself is always predicted up to t_ns, so its t_ns
    # says nothing about staleness. A filter state built in code without ``measured_ns`` counts
    # from its own time.
    last_measured_ns = (oracle_ego.t_ns if oracle_ego is not None
                        else ego_filter.measured_ns if ego_filter.measured_ns is not None else ego_filter.t_ns)
    if ego is not None and (t_ns - last_measured_ns) * 1e-9 > cfg.max_ego_age_s:
        ego = None
    return new, FusionOutput(ego, tracks, records, dropped, verdicts)
