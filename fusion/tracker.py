"""Batched multi-object tracker: constant-velocity Kalman filters over struct-of-arrays state, or
(``TrackerConfig.motion_model == "imm"``) an IMM of constant velocity and coordinated turn
(fusion/motion_imm.py) whose combined 4-D estimate takes the CV filter's place everywhere below.

One ``tracker_update`` consumes one frame of vehicle-frame ``Detections3D`` from any source:
predict every track to the frame time, place detections in the map with the ego pose at that time,
gate and assign, update (Joseph form, batched per measurement layout), manage tracks.
``tracker_predict`` outputs the confirmed ones at a given time, once per fusion cycle however many
frames the cycle applied; ``tracker_step`` is the two for a single frame. Frames must arrive in
time order (``fusion.sync`` orders them); an older frame is counted and skipped, never applied
with a negative time step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from core.messages import Detections3D, EgoState, Tracks
from fusion import kalman, motion_imm
from fusion.association import associate, gate_threshold
from fusion.detection_screen import check_shapes, valid_rows
from fusion.quiet_frame import quiet_cv_frame, quiet_cv_message
from fusion.frames import MapMeasurements, ego_pose_at, to_map
from fusion.track_hits import hit_rows
from fusion.track_merge import duplicates
from fusion.tracker_state import N_LABELS, SourceModel, TrackerConfig, TrackerState


def _is_range(idx: np.ndarray, n: int) -> bool:
    """Whether the index array ``idx`` is 0, 1, ..., n - 1: an association's pairs in track (or
    detection) order. Compared as bytes, a fraction of np.array_equal's cost."""
    return idx.shape[0] == n and idx.tobytes() == np.arange(n, dtype=idx.dtype).tobytes()


def _with_rows(at: slice | np.ndarray, old: np.ndarray, new_rows: np.ndarray) -> np.ndarray:
    """``old`` with its rows ``at`` replaced by ``new_rows``, as a new array; ``at`` a full slice
    when every row is replaced (then ``new_rows``, fresh, is the result)."""
    if isinstance(at, slice):
        return new_rows
    out = old.copy()
    out[at] = new_rows
    return out


def apply_linear_updates(x: np.ndarray, p: np.ndarray, track_idx: np.ndarray, z: np.ndarray,
                         r: np.ndarray, velocity_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Update tracks ``track_idx`` with map-frame z (K, 4), r (K, 4, 4): position only where the
    velocity is not valid, position and velocity elsewhere. Returns new arrays."""
    n, k = x.shape[0], track_idx.shape[0]
    if n and _is_range(track_idx, n):
        # Every track in order with one measurement layout (the steady state of a clean frame):
        # update_leading's fresh arrays need no copy, gather or scatter.
        if velocity_valid.all():
            return kalman.update_leading(x, p, z, r)
        if not velocity_valid.any():
            return kalman.update_leading(x, p, z[:, :2], r[:, :2, :2])
    return kalman.update_leading_at(x, p, track_idx, z, r, velocity_valid)


def linear_update_rows(x: np.ndarray, p: np.ndarray, z: np.ndarray, r: np.ndarray,
                       velocity_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Update every row x (R, n >= 4) with map-frame z (R, 4), r (R, 4, 4) (position only where
    the velocity is not valid); also the log-likelihood (R,) of each update, for the IMM."""
    if velocity_valid.all():
        return kalman.update_leading_loglik(x, p, z, r)
    if not velocity_valid.any():
        return kalman.update_leading_loglik(x, p, z[:, :2], r[:, :2, :2])
    x, p, ll = x.copy(), p.copy(), np.empty(x.shape[0])
    for dim, sel in ((2, ~velocity_valid), (4, velocity_valid)):
        x[sel], p[sel], ll[sel] = kalman.update_leading_loglik(x[sel], p[sel], z[sel, :dim],
                                                               r[sel, :dim, :dim])
    return x, p, ll


def _imm_predicted(state: TrackerState, t_ns: int, cfg: TrackerConfig) -> motion_imm.ImmPrediction:
    xm, pm, mu = motion_imm.ensure_models(state.x, state.p, state.xm, state.pm, state.mode_prob, cfg)
    if state.t_ns is None or t_ns <= state.t_ns or len(state) == 0:
        return motion_imm.ImmPrediction(xm, pm, mu, state.x, state.p)
    return motion_imm.predict(xm, pm, mu, (t_ns - state.t_ns) * 1e-9, cfg)


def _predicted(state: TrackerState, t_ns: int, cfg: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    if cfg.motion_model == "imm":
        pred = _imm_predicted(state, t_ns, cfg)
        return pred.x, pred.p
    if state.t_ns is None or t_ns <= state.t_ns or len(state) == 0:
        return state.x, state.p
    # N-major views of component-major arrays: the update and the repair work on their rows.
    xt, pt = kalman.cv_predict_components(state.x, state.p, (t_ns - state.t_ns) * 1e-9,
                                          cfg.accel_psd_m2ps3)
    return xt.T, pt.transpose(2, 0, 1)


def _output(state: TrackerState, x: np.ndarray, p: np.ndarray, t_ns: int) -> Tracks:
    """The confirmed tracks of ``state`` with states x, covariances p."""
    keep = state.confirmed
    labels = state.labels  # computed afresh: never aliases the state
    if np.count_nonzero(keep) == keep.shape[0]:  # keep.all(), at a quarter of its call overhead
        # The steady state: plain copies, cheaper than the boolean indexing below, which copies too.
        return Tracks(t_ns, state.ids.copy(), x.copy(), p.copy(), state.yaw.copy(), state.size.copy(),
                             labels, state.existence.copy())
    return Tracks(t_ns=t_ns, ids=state.ids[keep], states=x[keep], covariances=p[keep],
                  yaws=state.yaw[keep], sizes=state.size[keep], labels=labels[keep],
                  existence=state.existence[keep])



def tracker_predict(state: TrackerState, t_ns: int, cfg: TrackerConfig) -> Tracks:
    """Confirmed tracks predicted to ``t_ns``; never backwards: an earlier ``t_ns`` gives the state time."""
    state_t_ns = state.t_ns
    if state_t_ns is None:
        return Tracks.empty(t_ns)
    t_out = state_t_ns if state_t_ns > t_ns else t_ns  # max(t_ns, state.t_ns)
    if cfg.motion_model == "cv" and t_out > state_t_ns and state.ids.shape[0]:
        # The CV prediction (``_predicted``'s values), the labels and the copies, straight into
        # the output's own arrays, in one compiled call.
        x, p, labels, ids, yaw, size, existence = kalman.cv_track_output(
            state.x, state.p, (t_out - state_t_ns) * 1e-9, cfg.accel_psd_m2ps3, state.class_loglik,
            state.confirmed, state.ids, state.yaw, state.size, state.existence)
        return Tracks(t_out, ids, x, p, yaw, size, labels, existence)
    x, p = _predicted(state, t_out, cfg)
    return _output(state, x, p, t_out)


def _in_coverage(x_map: np.ndarray, pose: np.ndarray, src: SourceModel) -> np.ndarray:
    """Tracks (map x (N, >=2)) where ``src``'s detector can report them, with the ego at ``pose``."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = x_map[:, 0] - pose[0], x_map[:, 1] - pose[1]
    fwd, left = c * dx + s * dy, c * dy - s * dx  # vehicle frame
    inside = (fwd >= src.x_min_m) & (fwd <= src.x_max_m) & (left >= src.y_min_m) & (left <= src.y_max_m)
    fwd, left = fwd - src.mount_x_m, left - src.mount_y_m
    if src.mount_yaw_rad:
        cm, sm = math.cos(src.mount_yaw_rad), math.sin(src.mount_yaw_rad)
        fwd, left = cm * fwd + sm * left, cm * left - sm * fwd
    rng_m = np.hypot(fwd, left)
    inside &= rng_m <= src.max_range_m
    if src.fov_half_rad >= np.pi:
        return inside
    # |bearing| <= half-FOV  <=>  forward component >= cos(half-FOV) * range, for half-FOV in [0, pi].
    return inside & (fwd >= math.cos(src.fov_half_rad) * rng_m)


def _class_log_terms(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The class model of a detection with confidence ``score``: log-likelihood of its detected
    label (log_score) and of each other class (log_other); the score goes to the detected label,
    the rest is spread evenly over the other classes (a symmetric confusion model). Scores are
    finite (screened) float64."""
    # maximum/minimum is np.clip without its Python-level argument handling.
    s = np.minimum(np.maximum(scores, 1e-3), 1.0 - 1e-3)
    return np.log(s), np.log((1.0 - s) / max(N_LABELS - 1, 1))


def _class_loglik(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Log-likelihood (M, N_LABELS) of each true class given each detected label (screened)."""
    log_score, log_other = _class_log_terms(scores)
    out = np.empty((scores.shape[0], N_LABELS))
    out[:] = log_other[:, None]
    out[np.arange(scores.shape[0]), labels] = log_score
    return out


@dataclass(frozen=True, slots=True)
class Frame:
    """One sensor frame after screening, in the form the shared track logic needs."""

    t_ns: int
    pose: np.ndarray  # (3,) ego pose at t_ns
    meas: MapMeasurements  # map-frame positions (and velocities) for gating and births
    sizes: np.ndarray  # (M, 3) box size for births and smoothing
    labels: np.ndarray  # (M,) int64
    scores: np.ndarray  # (M,) float64
    shape_valid: bool  # the sensor measures box yaw and size (lidar, oracle), not camera or radar
    rejected: dict[str, int]  # counter increments from screening
    source: str  # the detection source, for the track's source mask


def frame_pose(state: TrackerState, t_meas: int, ego: EgoState, cfg: TrackerConfig):
    """(pose, pose_cov) at the frame time and None, or None and the state (its counters moved on)
    when the frame cannot be applied."""
    if state.t_ns is not None and t_meas < state.t_ns:
        return None, replace(state, counters=state.counters.add(frames=1, stale_frames=1))
    pose = ego_pose_at(ego, t_meas)
    pose_cov = np.asarray(ego.covariance, dtype=np.float64)[:3, :3]
    # A finite total clears the rule (see detection_screen.valid_rows); otherwise the exact test decides.
    if not (math.isfinite(float(np.add.reduce(pose)) + float(np.add.reduce(pose_cov, axis=None)))
            or (all(map(math.isfinite, pose.tolist())) and np.isfinite(pose_cov).all())):
        return None, replace(state, counters=state.counters.add(frames=1, bad_ego_frames=1))
    return (pose, pose_cov), None


def tracker_step(state: TrackerState, detections: Detections3D, ego: EgoState, t_ns: int,
                 cfg: TrackerConfig) -> tuple[TrackerState, Tracks]:
    """``tracker_update``, then the confirmed tracks predicted on to ``max(t_ns, detections.t_ns)``."""
    state = tracker_update(state, detections, ego, cfg)
    return state, tracker_predict(state, t_ns, cfg)


def tracker_update(state: TrackerState, detections: Detections3D, ego: EgoState,
                   cfg: TrackerConfig) -> TrackerState:
    """Apply one frame of vehicle-frame boxes (lidar, oracle, or radar taken as Cartesian); the
    state moves to ``detections.t_ns``. A fusion cycle applies every frame it released and then
    asks ``tracker_predict`` once for its output."""
    check_shapes(detections)
    cv_only = cfg.motion_model != "imm" and not state.mode_prob.shape[-1]
    if cv_only:
        # Most frames are clean and quiet: one compiled call from the message to the new state
        # (fusion/quiet_frame.py).
        quiet, screened = quiet_cv_message(state, detections, ego, cfg)
        if quiet is not None:
            return quiet
        # A screened frame that is not quiet is not quiet below either: apply_frame decides.
        cv_only = not screened
    t_meas = int(detections.t_ns)
    ok, unapplied = frame_pose(state, t_meas, ego, cfg)
    if unapplied is not None:
        return unapplied
    pose, pose_cov = ok
    keep, vel_valid, n_nonfinite, n_label, n_badvel = valid_rows(detections)
    src = cfg.source(detections.source)
    boxes, velocities = detections.boxes, detections.velocities_mps
    labels, scores = detections.labels, detections.scores
    if n_nonfinite or n_label:
        rows = np.flatnonzero(keep)
        boxes, velocities, vel_valid = boxes[rows], velocities[rows], vel_valid[rows]
        labels, scores = labels[rows], scores[rows]
    # astype copies (or widens) every array: the frame never aliases the caller's detections.
    boxes = boxes.astype(np.float64)
    meas = to_map(pose, pose_cov, boxes[:, :2], velocities.astype(np.float64), vel_valid,
                  boxes[:, 6], src.pos_sigma_m, src.vel_sigma_mps)
    frame = Frame(t_meas, pose, meas, boxes[:, 3:6], labels.astype(np.int64),
                  scores.astype(np.float64), True,
                  {"rejected_nonfinite": n_nonfinite, "rejected_label": n_label,
                   "invalidated_velocity": n_badvel}, detections.source)
    if cv_only:
        # A frame with rows rejected may still be quiet (fusion/quiet_frame.py).
        quiet = quiet_cv_frame(state, frame, src, cfg, _class_log_terms(frame.scores))
        if quiet is not None:
            return quiet

    def update(x, p, ti, di):
        if _is_range(di, meas.z.shape[0]):
            # Every detection matched, in order (tracks born from one source keep its order): the
            # measurement arrays as they are, which the update only reads, instead of gathers.
            return apply_linear_updates(x, p, ti, meas.z, meas.r, meas.velocity_valid)
        return apply_linear_updates(x, p, ti, meas.z[di], meas.r[di], meas.velocity_valid[di])

    def update_rows(x, p, ti, di):
        return linear_update_rows(x, p, meas.z[di], meas.r[di], meas.velocity_valid[di])

    return apply_frame(state, frame, src, update, cfg, update_rows)


def apply_frame(state: TrackerState, frame: Frame, src, update, cfg: TrackerConfig,
                update_rows: motion_imm.RowUpdate | None = None) -> TrackerState:
    """Predict, associate, update, manage tracks. The CV model updates with
    ``update(x, p, track_idx, det_idx) -> (x, p)``; the IMM with ``update_rows`` (see
    ``motion_imm.RowUpdate``), every (track, model) row at once, associating on the combination."""
    t_meas, pose, meas = frame.t_ns, frame.pose, frame.meas
    labels, scores = frame.labels, frame.scores
    bit = cfg.source_bit(frame.source)
    imm = cfg.motion_model == "imm"
    if imm:
        if update_rows is None:
            raise ValueError(f"source {frame.source!r}: the IMM motion model needs a row update")
        pred = _imm_predicted(state, t_meas, cfg)
        x, p = pred.x, pred.p
    else:
        x, p = _predicted(state, t_meas, cfg)
    assoc = associate(x, p, meas.z[:, :2], meas.r[:, :2, :2], gate_threshold(cfg.gate_probability))
    ti, di = assoc.track_idx, assoc.det_idx
    if imm:
        xm, pm, mode_prob, x, p = motion_imm.update(pred, ti, di, update_rows, cfg.imm_min_prob)
    else:
        x, p = update(x, p, ti, di)
        xm, pm, mode_prob = state.xm, state.pm, state.mode_prob
        if mode_prob.shape[-1]:  # models left by an IMM configuration: the CV filter has none
            xm, pm, mode_prob = _no_models(len(state))

    n, n_hit = len(state), ti.shape[0]  # a track is matched at most once
    all_hit = n_hit == n  # then nothing is missed, and every track was hit at t_meas
    # Every track hit in track order (a clean frame's steady state): a full slice stands for ti,
    # so the per-track updates below build whole arrays instead of scattering by index (the same
    # values, element for element).
    in_order = all_hit and _is_range(ti, n)
    at = slice(None) if in_order else ti
    if all_hit:
        # With every track hit none is missed, and the coverage cannot add a track: skip both.
        e = state.existence
        nis = _with_rows(at, state.last_nis, assoc.d2)  # a fresh array of this association's own
        hit_history, hits = (state.hit_history << 1) | 1, state.hits + 1
        misses = np.zeros(n, state.misses.dtype)
        last_hit = np.full(n, t_meas, state.last_hit_ns.dtype)
        source_mask = state.source_mask | bit
        trusted_misses = (np.zeros(n, state.trusted_misses.dtype) if src.confirms_alone
                          else state.trusted_misses)
    else:
        hit = np.zeros(n, bool)
        hit[at] = True
        # Only tracks the source could have seen take part in this frame's M-of-N and existence.
        seen = _in_coverage(x, pose, src) | hit
        missed = seen & ~hit
        # The miss update on every track, kept where missed: one select instead of two masked
        # gathers. hit_rows then applies the hits.
        pd = cfg.detection_probability
        e = state.existence
        e = np.where(missed, e * (1.0 - pd) / (1.0 - e * pd), e)
        last_hit = state.last_hit_ns.copy()
        last_hit[at] = t_meas
        nis = state.last_nis.copy()
        nis[at] = assoc.d2
        # hit implies seen, so a shift by ``seen`` (0 or 1) followed by or-ing the hit bit is the
        # M-of-N window moved on exactly for the tracks this frame covered; a product by ~hit
        # zeroes the run of misses of every track hit.
        not_hit = ~hit
        hit_history, hits = (state.hit_history << seen.view(np.uint8)) | hit, state.hits + hit
        misses = (state.misses + missed) * not_hit
        source_mask = state.source_mask | (hit.view(np.uint8) * bit)
        trusted_misses = ((state.trusted_misses + missed) * not_hit
                          if src.confirms_alone else state.trusted_misses)
    # The class evidence's logarithms are numpy's (see fusion/track_hits.py), for every detection.
    log_score, log_other = _class_log_terms(scores)
    yaw, size, class_ll, e = hit_rows(state.yaw, state.size, state.class_loglik, e, ti, di, meas.yaw,
                                      frame.sizes, frame.shape_valid, cfg.yaw_gain, cfg.size_gain, labels,
                                      log_score, log_other, scores)
    tracks = {
        "ids": state.ids, "x": x, "p": p, "yaw": yaw, "size": size, "class_loglik": class_ll,
        "hit_history": hit_history, "hits": hits, "misses": misses,
        "confirmed": state.confirmed, "existence": e, "last_hit_ns": last_hit, "last_nis": nis,
        "source_mask": source_mask, "trusted_misses": trusted_misses,
        "mode_prob": mode_prob, "xm": xm, "pm": pm,
    }

    # Births: unmatched detections that are not inside any track's gate (a second detection of a
    # tracked object must not spawn a twin) and confident enough.
    # A matched detection lies in its track's gate, so outside every gate means unmatched too;
    # with every detection matched there is none.
    if n_hit == labels.shape[0]:
        born = np.zeros(0, np.intp)
    else:
        born = (~assoc.det_in_any_gate & (scores >= cfg.init_min_score)).nonzero()[0]
    if born.shape[0]:
        births = _births(state.next_id, meas, born, frame.sizes, labels, scores, t_meas, bit, cfg)
        tracks = {k: np.concatenate([v, births[k]]) for k, v in tracks.items()}

    p_fixed, repaired, broken = kalman.repair_covariance(tracks["p"])
    tracks["p"] = p_fixed
    if not math.isfinite(tracks["x"].sum()):  # a finite total: every state finite (see detection_screen.valid_rows)
        broken |= ~np.isfinite(tracks["x"]).all(axis=1)
    if imm:
        # Repair applies per model; a track with any model broken is dropped.
        tracks["pm"], repaired_m, broken_m = motion_imm.repair(tracks["pm"])
        repaired |= repaired_m
        broken |= (broken_m | ~np.isfinite(tracks["xm"]).all(axis=(1, 2))
                   | ~np.isfinite(tracks["mode_prob"]).all(axis=1))

    confirmed = tracks["confirmed"]
    pos_var = np.maximum(p_fixed[:, 0, 0], p_fixed[:, 1, 1])
    unconfirmed = tracks["trusted_misses"] > cfg.max_trusted_misses
    alive = ~broken & (np.sqrt(pos_var) <= cfg.max_position_sigma_m) & ~unconfirmed
    # Every track hit or born at t_meas has coasted 0 s, within any (non-negative) limit.
    if not (all_hit and cfg.max_coast_confirmed_s >= 0.0 and cfg.max_coast_tentative_s >= 0.0):
        age_s = (t_meas - tracks["last_hit_ns"]) * 1e-9
        alive &= age_s <= np.where(confirmed, cfg.max_coast_confirmed_s, cfg.max_coast_tentative_s)
    all_confirmed = bool(confirmed.all())
    if not all_confirmed:
        alive &= confirmed | (tracks["existence"] >= cfg.min_existence)
    all_alive = bool(alive.all())
    if not all_alive:
        tracks = {k: v[alive] for k, v in tracks.items()}
    # Confirmation is sticky: with every track confirmed already, nothing is left to confirm.
    if not all_confirmed:
        window = np.uint32((1 << cfg.confirm_window) - 1)
        recent_hits = np.bitwise_count(tracks["hit_history"] & window)
        mask = tracks["source_mask"]
        corroborated = ((mask & cfg.alone_bits()) != 0) | (np.bitwise_count(mask) >= 2)
        tracks["confirmed"] = tracks["confirmed"] | ((recent_hits >= cfg.confirm_hits) & corroborated)
    dropped, absorbed_by = duplicates(tracks["x"][:, :2], tracks["yaw"], tracks["size"],
                                      tracks["confirmed"], tracks["hits"], tracks["ids"],
                                      cfg.merge_margin_m)
    n_dropped = int(np.count_nonzero(dropped))
    if n_dropped:
        # The survivor inherits the evidence of its twin: the sources that saw it.
        np.bitwise_or.at(tracks["source_mask"], absorbed_by[dropped], tracks["source_mask"][dropped])
        tracks = {k: v[~dropped] for k, v in tracks.items()}
    n_broken = int(np.count_nonzero(broken))
    counters = state.counters.add(
        frames=1, **frame.rejected, created=born.shape[0],
        covariance_repaired=int(np.count_nonzero(repaired)), covariance_dropped=n_broken,
        deleted=0 if all_alive else int(np.count_nonzero(~alive & ~broken)),
        unconfirmed_by_trusted=int(np.count_nonzero(unconfirmed & ~broken)), merged=n_dropped)
    return TrackerState(t_ns=t_meas, next_id=state.next_id + born.shape[0], counters=counters, **tracks)


def _births(next_id: int, meas: MapMeasurements, born: np.ndarray, sizes: np.ndarray, labels: np.ndarray,
            scores: np.ndarray, t_meas: int, bit: np.uint8, cfg: TrackerConfig) -> dict[str, np.ndarray]:
    k = born.shape[0]
    vel_ok = meas.velocity_valid[born]
    p0 = meas.r[born].copy()
    # Without a measured velocity the prior is a wide zero-mean velocity, uncorrelated with position.
    p0[~vel_ok, 2:, :] = 0.0
    p0[~vel_ok, :, 2:] = 0.0
    p0[~vel_ok, 2, 2] = p0[~vel_ok, 3, 3] = cfg.init_vel_sigma_mps**2
    x0 = meas.z[born].copy()
    x0[~vel_ok, 2:] = 0.0
    return {
        "ids": np.arange(next_id, next_id + k, dtype=np.int64), "x": x0, "p": p0,
        "yaw": meas.yaw[born].astype(np.float64), "size": sizes[born].copy(),
        "class_loglik": (lambda ll: ll - ll.max(axis=1, keepdims=True))(
            _class_loglik(labels[born], scores[born])),
        "hit_history": np.ones(k, np.uint32), "hits": np.ones(k, np.int32),
        "misses": np.zeros(k, np.int32), "confirmed": np.zeros(k, bool),
        "existence": scores[born].copy(), "last_hit_ns": np.full(k, t_meas, np.int64),
        "last_nis": np.full(k, np.nan), "source_mask": np.full(k, bit, np.uint8),
        "trusted_misses": np.zeros(k, np.int32),
        **dict(zip(("xm", "pm", "mode_prob"), (
            motion_imm.initial_models(x0, p0, cfg.imm_init_turn_sigma_rps, cfg.imm_init_turn_prob)
            if cfg.motion_model == "imm" else _no_models(k)))),
    }


def _no_models(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xm, pm, mode_prob) of n tracks under the CV motion model: no IMM models."""
    return np.zeros((n, 0, 5)), np.zeros((n, 0, 5, 5)), np.zeros((n, 0))
