"""Tracker configuration, struct-of-arrays state and counters.

The state is one frozen dataclass of arrays with a leading track axis; a step builds a new state
and never writes into the arrays of the old one, so a caller may keep (and replay from) any state.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace

import numpy as np

from core.config import rng
from core.records import fast_frozen_init
from core.messages import LABEL_NAMES

N_LABELS = len(LABEL_NAMES)


@dataclass(frozen=True, slots=True)
class SourceModel:
    """One detection source: its measurement noise and where its detector can report objects.

    The coverage decides which unmatched tracks count a miss: a track behind the car is not
    "missed" by a forward camera, nor a car 70 m ahead by a lidar detector whose grid ends at 52 m,
    so neither its M-of-N history nor its existence suffers. Coverage is a sector (half field of
    view and range, seen from the mount) intersected with a rectangle, both in the vehicle frame.
    """

    pos_sigma_m: float = field(default=0.3, metadata=rng(1e-3, 20.0))
    vel_sigma_mps: float = field(default=0.5, metadata=rng(1e-3, 20.0))
    fov_half_rad: float = field(default=3.1416, metadata=rng(0.0, 3.1416))
    max_range_m: float = field(default=150.0, metadata=rng(0.0, 1000.0))
    # A source whose detections are trusted alone (lidar boxes, the oracle, radar clusters: DBSCAN
    # leaves about one clutter cluster in 400, and only radar sees cars beyond ~60 m) confirms a
    # track by its own M-of-N; the camera (coarse range, false boxes) confirms only a track that a
    # second source has also hit, so its false alarms never become tracks.
    confirms_alone: bool = True
    mount_x_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))  # sector apex, vehicle frame
    mount_y_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    mount_yaw_rad: float = field(default=0.0, metadata=rng(-3.1416, 3.1416))  # sector axis
    x_min_m: float = field(default=-1000.0, metadata=rng(-1000.0, 1000.0))  # rectangle, vehicle frame
    x_max_m: float = field(default=1000.0, metadata=rng(-1000.0, 1000.0))
    y_min_m: float = field(default=-1000.0, metadata=rng(-1000.0, 1000.0))
    y_max_m: float = field(default=1000.0, metadata=rng(-1000.0, 1000.0))


def _default_sources() -> dict[str, SourceModel]:
    # The shipped rig (sim.sensors.config) and detectors: the lidar detector sees its
    # bird's-eye-view grid (perception.bev.BevGridConfig, +-52 m x +-26 m); the radar a 90-degree
    # cone to 160 m from the front bumper; the camera detector finds cars reliably to about 60 m
    # (farther boxes come and go), so only that far does a camera frame without a box count a miss.
    # runtime.perception_factory.tracker_for_rig derives these from the configured rig and grid;
    # tests/fusion check the defaults against the shipped ones.
    return {"oracle": SourceModel(0.2, 0.3, 3.1416, 150.0),
            "lidar": SourceModel(0.25, 0.5, 3.1416, 120.0, mount_x_m=1.4, x_min_m=-52.0, x_max_m=52.0,
                                 y_min_m=-26.0, y_max_m=26.0),
            "radar": SourceModel(0.8, 0.3, 0.7854, 160.0, mount_x_m=3.7),
            "camera": SourceModel(1.5, 1.5, 0.7854, 60.0, confirms_alone=False, mount_x_m=1.6),
            # The classical lidar path (no model, or the fallback) searches the same box.
            "lidar_classical": SourceModel(0.3, 0.5, 3.1416, 120.0, mount_x_m=1.4, x_min_m=-52.0,
                                           x_max_m=52.0, y_min_m=-26.0, y_max_m=26.0)}


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    # White-acceleration spectral density of the constant-velocity model: traffic manoeuvres at
    # a few m/s^2, so q ~ 2 m^2/s^3 keeps NEES consistent without lagging in turns.
    accel_psd_m2ps3: float = field(default=2.0, metadata=rng(1e-4, 100.0))
    sources: dict[str, SourceModel] = field(default_factory=_default_sources)
    default_source: SourceModel = field(default_factory=SourceModel)
    gate_probability: float = field(default=0.9999, metadata=rng(0.5, 0.999999))
    init_vel_sigma_mps: float = field(default=10.0, metadata=rng(0.1, 100.0))
    init_min_score: float = field(default=0.3, metadata=rng(0.0, 1.0))
    confirm_hits: int = field(default=3, metadata=rng(1, 32))  # M of ...
    confirm_window: int = field(default=5, metadata=rng(1, 32))  # ... N updates
    max_coast_tentative_s: float = field(default=0.3, metadata=rng(0.0, 60.0))
    max_coast_confirmed_s: float = field(default=1.5, metadata=rng(0.0, 60.0))
    max_position_sigma_m: float = field(default=5.0, metadata=rng(0.1, 1000.0))
    detection_probability: float = field(default=0.9, metadata=rng(0.01, 0.99))
    # Existence prunes tentative tracks (false alarms); confirmed tracks end by coasting time or
    # covariance, because a few misses in a row are normal when three sensors disagree on visibility.
    min_existence: float = field(default=0.05, metadata=rng(0.0, 1.0))
    # Two tracks whose centres lie inside each other's boxes (grown by this margin) describe one
    # object (two real objects cannot overlap): the younger, less supported one is merged away.
    merge_margin_m: float = field(default=0.3, metadata=rng(0.0, 5.0))
    # A track that the trusted sources (lidar, radar) keep covering without detecting it for this
    # many frames in a row is deleted, however often the camera still reports it: a camera box
    # whose ground-plane range is wrong by 15 m (a car at 45 m read at 28 m) otherwise feeds a
    # ghost ahead of the ego for as long as the car stays in view. 20 frames is ~0.7 s of lidar
    # and radar together, 2 s of lidar alone; with both lost (no trusted frames) nothing counts.
    max_trusted_misses: int = field(default=20, metadata=rng(1, 10_000))
    # Motion model: "cv", the constant-velocity Kalman filter above; "imm", an interacting
    # multiple model of that CV model and a nearly-coordinated-turn model on (x, y, vx, vy, omega)
    # (fusion/motion_imm.py). The CV model alone must keep accel_psd low to keep straight tracks
    # quiet, and then lags a cut-in's lateral velocity by a metre per second; the turn model
    # follows the velocity turning while the CV model keeps straight driving quiet. While tracks
    # lived in the map frame, the IMM took every cut_in seed 0..19 without an emergency plan (CV:
    # seed 18 one) and raised eval-tracker's MOTA 0.92 -> 0.94; it costs twice the filter time
    # (fusion p99 7 ms against its 5 ms budget on two cores), and since tracking moved to the
    # odometry frame CV meets every closed-loop criterion too: CV is the default.
    motion_model: str = field(default="cv", metadata=rng(choices=("cv", "imm")))
    imm_p_stay: float = field(default=0.95, metadata=rng(0.5, 0.999999))  # per 100 ms, each model
    # The turn model's noise: the CV model's white acceleration (so its covariance is never the
    # tighter one: with 0.2 m^2/s^3 the turn model claimed straight driving too and the full-stack
    # NEES rose from 17 to 20) plus a random-walk turn rate quick enough to follow a lane
    # change's onset (0.13 rad/s at 15 m/s for 2 m/s^2 lateral) within a few frames.
    ct_accel_psd_m2ps3: float = field(default=2.0, metadata=rng(1e-4, 100.0))
    ct_turn_psd_rad2ps3: float = field(default=0.1, metadata=rng(1e-6, 100.0))
    imm_init_turn_sigma_rps: float = field(default=0.1, metadata=rng(1e-4, 10.0))  # newborn omega doubt
    imm_init_turn_prob: float = field(default=0.1, metadata=rng(0.0, 1.0))  # newborn turn-model share
    # Floor of every model probability: no model dies out (it could not take over again in time).
    imm_min_prob: float = field(default=1e-3, metadata=rng(0.0, 0.1))
    yaw_gain: float = field(default=0.5, metadata=rng(0.0, 1.0))  # smoothing of box yaw
    size_gain: float = field(default=0.3, metadata=rng(0.0, 1.0))  # smoothing of box size

    def __post_init__(self) -> None:
        if self.confirm_hits > self.confirm_window:
            raise ValueError(f"confirm_hits ({self.confirm_hits}) must be <= confirm_window "
                             f"({self.confirm_window})")

    def source(self, name: str) -> SourceModel:
        return self.sources.get(name, self.default_source)

    def source_bit(self, name: str) -> np.uint8:
        """The bit of ``name`` in a track's ``source_mask``: its position among ``sources`` (the
        first seven), bit 7 for every other source."""
        return np.uint8(self.source_bit_int(name))

    def source_bit_int(self, name: str) -> int:
        """``source_bit`` as a Python int: the compiled quiet frame takes it so, once per frame,
        without a numpy scalar's construction and its conversion back."""
        for k, key in enumerate(self.sources):
            if key == name:
                return 1 << min(k, 7)
        return 1 << 7

    def alone_bits(self) -> np.uint8:
        """Mask of the sources that confirm a track on their own."""
        return np.uint8(self.alone_bits_int())

    def alone_bits_int(self) -> int:
        """``alone_bits`` as a Python int (see ``source_bit_int``)."""
        # One pass over ``sources`` (source_bit per name would rescan them for every name); the
        # default source's bit is that of a name no source has: bit 7, unless one is named "\0".
        bits = 0
        for k, src in enumerate(self.sources.values()):
            if src.confirms_alone:
                bits |= 1 << min(k, 7)
        if self.default_source.confirms_alone:
            bits |= self.source_bit_int("\0") if "\0" in self.sources else 1 << 7
        return bits


@fast_frozen_init  # built every frame (core/records.py)
@dataclass(frozen=True, slots=True)
class TrackerCounters:
    """Monotone event counts; the runtime logs them and the health monitor watches their rates."""

    frames: int = 0
    stale_frames: int = 0  # detections older than the state: never applied backwards in time
    bad_ego_frames: int = 0  # non-finite ego pose: the frame cannot be placed in the map
    rejected_nonfinite: int = 0  # detections with NaN/inf position, size, yaw or score
    rejected_label: int = 0  # detections with a label outside LABEL_NAMES
    # camera boxes left out: cut off by the image border, or nearer than CameraModel.min_range_m
    camera_unreliable: int = 0
    invalidated_velocity: int = 0  # velocity flagged valid but non-finite: used as position only
    covariance_repaired: int = 0
    covariance_dropped: int = 0
    created: int = 0
    unconfirmed_by_trusted: int = 0  # deleted after max_trusted_misses (camera-only ghosts)
    deleted: int = 0
    merged: int = 0  # duplicate tracks of one object merged into the older one

    def add(self, **deltas: int) -> "TrackerCounters":
        # Called every frame: the slots read in one C call (attrgetter) and one positional
        # construction (fast_frozen_init, core/records.py), not
        # dataclasses.replace (which re-reads every field through its init machinery).
        values = list(_read_counters(self))
        for k, v in deltas.items():
            if v:
                values[_COUNTER_INDEX[k]] += int(v)
        return TrackerCounters(*values)

    def frame_added(self) -> "TrackerCounters":
        """``add(frames=1)``: a frame applied with nothing else to count (the quiet frame's)."""
        frames, *rest = _read_counters(self)
        return TrackerCounters(frames + 1, *rest)


# The counters' positions (fields in declaration order, as the constructor takes them) and one
# call reading all of them, for TrackerCounters.add.
_COUNTER_INDEX = {name: k for k, name in enumerate(TrackerCounters.__slots__)}
_read_counters = operator.attrgetter(*TrackerCounters.__slots__)


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class TrackerState:
    t_ns: int | None  # time the filter state refers to; None before the first frame
    next_id: int
    ids: np.ndarray  # (N,) int64
    x: np.ndarray  # (N, 4) float64 x, y, vx, vy in the map frame
    p: np.ndarray  # (N, 4, 4) float64
    yaw: np.ndarray  # (N,) float64
    size: np.ndarray  # (N, 3) float64 length, width, height
    class_loglik: np.ndarray  # (N, N_LABELS) float64, normalised so the max is 0
    hit_history: np.ndarray  # (N,) uint32, bit 0 = the latest frame
    hits: np.ndarray  # (N,) int32 total associated detections
    misses: np.ndarray  # (N,) int32 consecutive frames without a detection
    confirmed: np.ndarray  # (N,) bool, sticky once set
    existence: np.ndarray  # (N,) float64
    last_hit_ns: np.ndarray  # (N,) int64
    # Normalised innovation squared of each track's latest update (2-dof position gate statistic;
    # NaN before the first update): the consistency monitor and eval-tracker average it.
    last_nis: np.ndarray  # (N,) float64
    # Sources that have hit the track (bits from ``TrackerConfig.source_bit``): confirmation needs
    # a source trusted alone or two distinct sources.
    source_mask: np.ndarray  # (N,) uint8
    # Consecutive frames of sources trusted alone (lidar, radar, oracle) that covered the track and
    # did not detect it; a hit from such a source resets it. Camera hits do not: see
    # ``TrackerConfig.max_trusted_misses``.
    trusted_misses: np.ndarray  # (N,) int32
    # IMM motion (``TrackerConfig.motion_model == "imm"``; M = 0 under "cv"): model probabilities
    # and per-model states (x, y, vx, vy, omega); x and p above are then their moment-matched
    # combination, so everything else reads the 4-D estimate whatever the motion model.
    mode_prob: np.ndarray  # (N, M) float64, rows sum to 1
    xm: np.ndarray  # (N, M, 5) float64
    pm: np.ndarray  # (N, M, 5, 5) float64
    counters: TrackerCounters = field(default_factory=TrackerCounters)

    @staticmethod
    def empty() -> "TrackerState":
        return TrackerState(
            t_ns=None, next_id=1, ids=np.zeros(0, np.int64), x=np.zeros((0, 4)),
            p=np.zeros((0, 4, 4)), yaw=np.zeros(0), size=np.zeros((0, 3)),
            class_loglik=np.zeros((0, N_LABELS)), hit_history=np.zeros(0, np.uint32),
            hits=np.zeros(0, np.int32), misses=np.zeros(0, np.int32), confirmed=np.zeros(0, bool),
            existence=np.zeros(0), last_hit_ns=np.zeros(0, np.int64), last_nis=np.zeros(0),
            source_mask=np.zeros(0, np.uint8), trusted_misses=np.zeros(0, np.int32),
            mode_prob=np.zeros((0, 0)), xm=np.zeros((0, 0, 5)), pm=np.zeros((0, 0, 5, 5)))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def labels(self) -> np.ndarray:
        return self.class_loglik.argmax(axis=1).astype(np.int16)

