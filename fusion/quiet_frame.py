"""The tracker's quiet frame in one compiled call: a constant-velocity Cartesian frame (lidar,
oracle) in which nothing but filtering happens.

``tracker.apply_frame`` spends about a hundred numpy calls on a frame, each on arrays of a few
tracks, where the per-call overhead, not the arithmetic, is the cost. Most frames are quiet: each
detection gates with one track at most and each track with one detection at most (no assignment
to solve), nothing is born, no covariance needs repair, nothing dies, no two tracks are one.
``quiet_cv_frame`` runs such a frame through the compiled kernels apply_frame itself uses
(predict, gate, update, hit rows, covariance check, merge certificate) and apply_frame's
bookkeeping, operation for operation, so it gives apply_frame's bits
(tests/fusion/test_fusion_quiet_frame.py compares the two frame by frame). Where the merge
certificate cannot rule a pair out (tracks in neighbouring lanes side by side), the exact box
test of track_merge.duplicates runs in the kernel over every pair (track_merge.any_overlap). At
the first sign that the frame is not quiet it gives up (None), and the caller runs apply_frame,
which decides everything as it always has.

``quiet_cv_message`` starts one step earlier, from the message as it came: the detection screen,
the ego pose at the frame time and the placement in the map (tracker_update's frame preparation)
run in the same compiled call, and a message that needs the screen's Python path (rows to reject)
goes there.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types

from core.jit import kernel
from core.messages import Detections3D, EgoState
from fusion.association import _gated_pairs, _sorts_before, gate_threshold
from fusion.detection_screen import _all_clean
from fusion.frames import place_into, pose_at
from fusion.kalman import MIN_EIGENVALUE
from fusion.kalman_kernels import cv_predicted_tracks, symmetrised_checked, update_leading_at
from fusion.track_hits import hit_rows
from fusion.track_merge import _apart, any_overlap
from fusion.tracker_state import N_LABELS, SourceModel, TrackerConfig, TrackerCounters, TrackerState


def _readonly(dtype, ndim):
    return types.Array(dtype, ndim, "A", readonly=True)


_F1, _F2 = _readonly(types.float64, 1), _readonly(types.float64, 2)
# The outputs, written into arrays the caller allocates: a numba array handed back costs about a
# microsecond to box, an np.empty a fifth of that, and the kernel otherwise returned 14 of them.
_OUTPUTS = (
    types.float64[:, ::1], types.float64[:, :, ::1],  # x (N, 4); symmetrised P, component-major (4, 4, N)
    types.float64[::1], types.float64[:, ::1], types.float64[:, ::1], types.float64[::1],  # yaw, size, class, existence
    types.uint32[::1], types.int32[::1], types.int32[::1],  # hit_history, hits, misses
    types.int64[::1], types.float64[::1], types.uint8[::1], types.int32[::1],  # last_hit_ns, last_nis, source_mask, trusted
    types.boolean[::1])  # confirmed
# The state: x, p (writable, as kalman_kernels takes them), the dt [s] to predict by (0: none)
# and the process noise entries, then the per-track bookkeeping.
_STATE = (types.float64[:, :], types.float64[:, :, :], types.float64, types.float64, types.float64, types.float64,
          _F1, _readonly(types.uint32, 1), _readonly(types.int32, 1), _readonly(types.int32, 1),
          _readonly(types.int64, 1), _F1, _readonly(types.uint8, 1), _readonly(types.int32, 1),
          _readonly(types.boolean, 1), _F1, _F2, _F2)
# The source: its bit, whether it confirms alone, and its coverage (see tracker._in_coverage):
# the rectangle, the mount, the range and the field of view (``_coverage_terms``).
_SOURCE = (types.int64, types.boolean, types.float64, types.float64, types.float64, types.float64,
           types.float64, types.float64, types.boolean, types.float64, types.float64, types.float64,
           types.boolean, types.float64)
# The configuration (``_config_terms``).
_CONFIG = (types.float64, types.float64, types.float64, types.float64, types.float64, types.float64,
           types.int64, types.float64, types.float64, types.float64, types.float64, types.int64, types.int64,
           types.int64, types.float64)
_SIGNATURE = types.int64(  # NOT_QUIET or QUIET
    *_STATE,
    # the frame: map measurements z (M, 4), r (M, 4, 4), velocity validity, x order, box yaw and
    # size, labels, class log terms, scores, time, and the ego pose then: cos and sin of its yaw,
    # its position
    types.float64[:, :], types.float64[:, :, :], _readonly(types.boolean, 1), types.int64[::1], _F1, _F2,
    _readonly(types.int64, 1), _F1, _F1, _F1, types.int64, types.float64, types.float64, types.float64,
    types.float64,
    *_SOURCE, *_CONFIG, *_OUTPUTS)
_MESSAGE_SIGNATURE = types.int64(  # UNSCREENED, or as _SIGNATURE
    *_STATE,
    # the message's boxes, velocities, velocity validity, labels and scores, as Detections3D
    # holds them, and its time
    _readonly(types.float32, 2), _readonly(types.float32, 2), _readonly(types.boolean, 1),
    _readonly(types.int16, 1), _readonly(types.float32, 1), types.int64,
    # the ego: pose x, y, yaw, speed, yaw rate, the time [s] from its own to the frame's, its
    # covariance (at least 3 x 3)
    types.float64, types.float64, types.float64, types.float64, types.float64, types.float64, _F2,
    # the source's position and velocity variance (its sigmas squared)
    types.float64, types.float64,
    *_SOURCE, *_CONFIG, *_OUTPUTS)


# The outcomes of _quiet_cv_frame: the frame is not quiet (the outputs are then meaningless); it
# is; and of _quiet_cv_message also: the message is not one the kernel takes as it is (rows to
# reject, an empty frame, a non-finite ego pose), the screen in Python decides.
NOT_QUIET, QUIET, UNSCREENED = 0, 1, 2


@kernel("int64(int64)")
def _popcount(v):
    """Set bits of ``v`` (np.bitwise_count's)."""
    count = 0
    while v:
        count += v & 1
        v >>= 1
    return count


@kernel(_SIGNATURE)
def _quiet_cv_frame(x, p, dt_s, q_pos, q_pos_vel, q_vel,
                    existence, hit_history, hits, misses, last_hit_ns, last_nis, source_mask, trusted_misses,
                    confirmed, yaw, size, class_loglik,
                    z, r, velocity_valid, order, det_yaw, det_size, labels, log_score, log_other, scores,
                    t_meas, cos_yaw, sin_yaw, pose_x, pose_y,
                    bit, confirms_alone, x_min_m, x_max_m, y_min_m, y_max_m,
                    mount_x_m, mount_y_m, mount_turned, cos_mount, sin_mount, max_range_m, full_fov, cos_fov,
                    gate_d2, detection_probability, init_min_score, yaw_gain, size_gain, min_eigenvalue,
                    max_trusted_misses, max_position_sigma_m, max_coast_confirmed_s, max_coast_tentative_s,
                    min_existence, confirm_window_mask, confirm_hits, alone_bits, merge_margin_m,
                    x_out, sym_out, yaw_out, size_out, class_out, e, hh, hits_out, misses_out, last_hit, nis,
                    mask, trusted, confirmed_out):
    """apply_frame (CV model, shape-valid Cartesian frame) when the frame is quiet; see the
    module docstring. Each step names the apply_frame code it performs."""
    n, m = x.shape[0], z.shape[0]
    nothing = NOT_QUIET
    # _predicted: the CV prediction to the frame time, or the state as it is.
    if dt_s > 0.0:
        xp, pp = cv_predicted_tracks(x, p, dt_s, q_pos, q_pos_vel, q_vel)
    else:
        xp, pp = x.copy(), p.copy()
    # associate: the gated pairs; an assignment to solve is apply_frame's.
    ii, jj, d2, _det, _row_count, col_count, contested = _gated_pairs(xp, pp, z[:, :2], r[:, :2, :2],
                                                                      order, gate_d2)
    if contested:
        return nothing
    k = ii.shape[0]
    # Births: a detection in no gate and confident enough.
    if k != m:
        for j in range(m):
            if col_count[j] == 0 and scores[j] >= init_min_score:
                return nothing
    # update (apply_linear_updates): each matched track by its detection, position and velocity
    # where that is valid, position only elsewhere.
    zk = np.empty((k, 4))
    rk = np.empty((k, 4, 4))
    vk = np.empty(k, np.bool_)
    for a in range(k):
        j = jj[a]
        vk[a] = velocity_valid[j]
        for b in range(4):
            zk[a, b] = z[j, b]
            for c in range(4):
                rk[a, b, c] = r[j, b, c]
    xu, pu = update_leading_at(xp, pp, ii, zk, rk, vk)
    # The bookkeeping of hits and misses (apply_frame's partial-frame formulas, which give the
    # all-hit branch's values when every track is hit).
    all_hit = k == n
    hit = np.zeros(n, np.bool_)
    for a in range(k):
        hit[ii[a]] = True
    keep_prob = 1.0 - detection_probability
    for i in range(n):
        seen = hit[i]
        if not seen:  # _in_coverage, for a track the frame did not hit
            dx, dy = xu[i, 0] - pose_x, xu[i, 1] - pose_y
            fwd, left = cos_yaw * dx + sin_yaw * dy, cos_yaw * dy - sin_yaw * dx
            seen = fwd >= x_min_m and fwd <= x_max_m and left >= y_min_m and left <= y_max_m
            fwd, left = fwd - mount_x_m, left - mount_y_m
            if mount_turned:
                fwd, left = cos_mount * fwd + sin_mount * left, cos_mount * left - sin_mount * fwd
            rng_m = np.hypot(fwd, left)
            seen = seen and rng_m <= max_range_m
            if not full_fov:
                seen = seen and fwd >= cos_fov * rng_m
        missed = seen and not hit[i]
        e[i] = (existence[i] * keep_prob / (1.0 - existence[i] * detection_probability) if missed
                else existence[i])
        hh[i] = (hit_history[i] << (1 if seen else 0)) | (1 if hit[i] else 0)
        hits_out[i] = hits[i] + (1 if hit[i] else 0)
        misses_out[i] = 0 if hit[i] else misses[i] + (1 if missed else 0)
        last_hit[i] = t_meas if hit[i] else last_hit_ns[i]
        nis[i] = last_nis[i]
        mask[i] = source_mask[i] | bit if hit[i] else source_mask[i]
        if confirms_alone:
            trusted[i] = 0 if hit[i] else trusted_misses[i] + (1 if missed else 0)
        else:
            trusted[i] = trusted_misses[i]
    for a in range(k):
        nis[ii[a]] = d2[a]
    yaw_h, size_h, class_h, e_h = hit_rows(yaw, size, class_loglik, e, ii, jj, det_yaw, det_size, True,
                                           yaw_gain, size_gain, labels, log_score, log_other, scores)
    yaw_out[:] = yaw_h
    size_out[:] = size_h
    class_out[:] = class_h
    e[:] = e_h
    # repair_covariance: nothing to repair and nothing broken, or apply_frame decides.
    sym, broken, pivots_ok = symmetrised_checked(pu, min_eigenvalue)
    if not pivots_ok:
        return nothing
    for i in range(n):
        if broken[i]:
            return nothing
        for a in range(4):
            if not math.isfinite(xu[i, a]):
                return nothing
    # alive: every track stays, or apply_frame deletes.
    all_confirmed = True
    for i in range(n):
        all_confirmed &= confirmed[i]
    check_coast = not (all_hit and max_coast_confirmed_s >= 0.0 and max_coast_tentative_s >= 0.0)
    for i in range(n):
        if trusted[i] > max_trusted_misses:
            return nothing
        if not np.sqrt(max(sym[0, 0, i], sym[1, 1, i])) <= max_position_sigma_m:
            return nothing
        if check_coast:
            age_s = (t_meas - last_hit[i]) * 1e-9
            if not age_s <= (max_coast_confirmed_s if confirmed[i] else max_coast_tentative_s):
                return nothing
        if not all_confirmed and not (confirmed[i] or e[i] >= min_existence):
            return nothing
    # Confirmation (sticky): M of the last N frames, from a source trusted alone or two sources.
    for i in range(n):
        corroborated = (mask[i] & alone_bits) != 0 or _popcount(np.int64(mask[i])) >= 2
        confirmed_out[i] = confirmed[i] or (
            _popcount(np.int64(hh[i] & confirm_window_mask)) >= confirm_hits and corroborated)
    # duplicates: apart (the merge certificate), or no two tracks in each other's boxes, or
    # apply_frame merges.
    if n >= 2:
        half_diagonal_m = 0.0
        length_m = size_out[0, 0]
        for i in range(n):
            if not (math.isfinite(size_out[i, 0]) and math.isfinite(size_out[i, 1])):
                return nothing
            h = np.hypot(0.5 * size_out[i, 0] + merge_margin_m, 0.5 * size_out[i, 1] + merge_margin_m)
            half_diagonal_m = h if i == 0 or h > half_diagonal_m else half_diagonal_m
            length_m = size_out[i, 0] if size_out[i, 0] > length_m else length_m
        reach_m = length_m + merge_margin_m
        if half_diagonal_m > reach_m:
            reach_m = half_diagonal_m
        if not _apart(xu[:, :2], reach_m) and any_overlap(xu, yaw_out, size_out, merge_margin_m):
            return nothing
    x_out[:] = xu
    sym_out[:] = sym
    return QUIET


@kernel(types.int64[::1](types.float64[:, ::1]))
def _x_order(z):
    """numpy's stable argsort of z[:, 0] (NaN last): an insertion sort, which is stable, by
    association's comparison."""
    m = z.shape[0]
    order = np.empty(m, np.int64)
    for k in range(m):
        j = k
        while j > 0 and _sorts_before(z[k, 0], z[order[j - 1], 0]):
            order[j] = order[j - 1]
            j -= 1
        order[j] = k
    return order


@kernel(_MESSAGE_SIGNATURE)
def _quiet_cv_message(x, p, dt_s, q_pos, q_pos_vel, q_vel,
                      existence, hit_history, hits, misses, last_hit_ns, last_nis, source_mask, trusted_misses,
                      confirmed, yaw, size, class_loglik,
                      boxes, velocities, velocity_valid, labels, scores, t_meas,
                      ego_x, ego_y, ego_yaw, ego_speed_mps, ego_yaw_rate_rps, ego_dt_s, ego_cov, pos_var, vel_var,
                      bit, confirms_alone, x_min_m, x_max_m, y_min_m, y_max_m,
                      mount_x_m, mount_y_m, mount_turned, cos_mount, sin_mount, max_range_m, full_fov, cos_fov,
                      gate_d2, detection_probability, init_min_score, yaw_gain, size_gain, min_eigenvalue,
                      max_trusted_misses, max_position_sigma_m, max_coast_confirmed_s, max_coast_tentative_s,
                      min_existence, confirm_window_mask, confirm_hits, alone_bits, merge_margin_m,
                      x_out, sym_out, yaw_out, size_out, class_out, e, hh, hits_out, misses_out, last_hit, nis,
                      mask, trusted, confirmed_out):
    """tracker_update's frame preparation, then ``_quiet_cv_frame``: from the message as it came
    to the quiet frame's outcome, in one call. Each step names the tracker_update code it performs;
    where that code would reject a row or refuse the frame, UNSCREENED, and the caller's Python
    path decides.

    The class evidence's logarithms (tracker._class_log_terms) are the C library's ``log``,
    whose bits numpy's float64 log gives on this host, as its sin and cos do
    (tests/fusion/test_fusion_quiet_frame.py compares the logarithms, and each quiet frame with
    apply_frame's)."""
    m = boxes.shape[0]
    # detection_screen.valid_rows: a clean frame keeps every row (and velocity) as it is.
    if m == 0 or not _all_clean(boxes, velocities, scores, labels, N_LABELS):
        return UNSCREENED
    # tracker.frame_pose: the ego pose at the frame time, finite with its covariance.
    pose_x, pose_y, pose_yaw = pose_at(ego_x, ego_y, ego_yaw, ego_speed_mps, ego_yaw_rate_rps, ego_dt_s)
    finite = math.isfinite(pose_x) and math.isfinite(pose_y) and math.isfinite(pose_yaw)
    for a in range(3):
        for b in range(3):
            finite = finite and math.isfinite(ego_cov[a, b])
    if not finite:
        return UNSCREENED
    # The frame's float64 copies of the message's rows, and to_map.
    xy, v, yaw_vehicle, sizes = np.empty((m, 2)), np.empty((m, 2)), np.empty(m), np.empty((m, 3))
    labels64, scores64 = np.empty(m, np.int64), np.empty(m)
    log_score, log_other = np.empty(m), np.empty(m)
    for i in range(m):
        xy[i, 0], xy[i, 1] = boxes[i, 0], boxes[i, 1]
        v[i, 0], v[i, 1] = velocities[i, 0], velocities[i, 1]
        yaw_vehicle[i] = boxes[i, 6]
        for c in range(3):
            sizes[i, c] = boxes[i, 3 + c]
        labels64[i] = labels[i]
        scores64[i] = scores[i]
        # tracker._class_log_terms: the score clipped to [1e-3, 1 - 1e-3] (numpy's maximum and
        # minimum, a NaN kept), the rest spread evenly over the other classes.
        clipped = scores64[i]
        if clipped < 1e-3:
            clipped = 1e-3
        if clipped > 1.0 - 1e-3:
            clipped = 1.0 - 1e-3
        log_score[i] = math.log(clipped)
        log_other[i] = math.log((1.0 - clipped) / max(N_LABELS - 1, 1))
    z, r, yaw_map = np.empty((m, 4)), np.empty((4, 4, m)), np.empty(m)
    place_into(xy, v, velocity_valid, yaw_vehicle, pose_x, pose_y, pose_yaw, ego_cov[0, 0], ego_cov[0, 1],
               ego_cov[1, 1], ego_cov[0, 2], ego_cov[1, 2], ego_cov[2, 2], pos_var, vel_var, z, r, yaw_map)
    return _quiet_cv_frame(
        x, p, dt_s, q_pos, q_pos_vel, q_vel, existence, hit_history, hits, misses, last_hit_ns, last_nis,
        source_mask, trusted_misses, confirmed, yaw, size, class_loglik,
        z, r.transpose(2, 0, 1), velocity_valid, _x_order(z), yaw_map, sizes, labels64, log_score, log_other,
        scores64, t_meas, math.cos(pose_yaw), math.sin(pose_yaw), pose_x, pose_y,
        bit, confirms_alone, x_min_m, x_max_m, y_min_m, y_max_m,
        mount_x_m, mount_y_m, mount_turned, cos_mount, sin_mount, max_range_m, full_fov, cos_fov,
        gate_d2, detection_probability, init_min_score, yaw_gain, size_gain, min_eigenvalue,
        max_trusted_misses, max_position_sigma_m, max_coast_confirmed_s, max_coast_tentative_s,
        min_existence, confirm_window_mask, confirm_hits, alone_bits, merge_margin_m,
        x_out, sym_out, yaw_out, size_out, class_out, e, hh, hits_out, misses_out, last_hit, nis,
        mask, trusted, confirmed_out)


def _coverage_terms(src: SourceModel) -> tuple:
    """The kernels' coverage arguments of ``src`` (see tracker._in_coverage)."""
    return (src.x_min_m, src.x_max_m, src.y_min_m, src.y_max_m, src.mount_x_m, src.mount_y_m,
            bool(src.mount_yaw_rad), math.cos(src.mount_yaw_rad), math.sin(src.mount_yaw_rad), src.max_range_m,
            src.fov_half_rad >= np.pi, math.cos(src.fov_half_rad))


def _config_terms(cfg: TrackerConfig) -> tuple:
    """The kernels' configuration arguments."""
    return (gate_threshold(cfg.gate_probability), cfg.detection_probability, cfg.init_min_score, cfg.yaw_gain,
            cfg.size_gain, MIN_EIGENVALUE, cfg.max_trusted_misses, cfg.max_position_sigma_m,
            cfg.max_coast_confirmed_s, cfg.max_coast_tentative_s, cfg.min_existence,
            (1 << cfg.confirm_window) - 1, cfg.confirm_hits, cfg.alone_bits_int(), cfg.merge_margin_m)


def _predict_terms(state: TrackerState, t_ns: int, cfg: TrackerConfig) -> tuple[float, float, float, float]:
    """The CV prediction's dt [s] to the frame time ``t_ns`` (0: none) and its process noise
    entries (kalman.cv_process_noise's)."""
    dt_s = (t_ns - state.t_ns) * 1e-9 if state.t_ns is not None and t_ns > state.t_ns else 0.0
    psd = cfg.accel_psd_m2ps3
    return dt_s, dt_s**3 / 3.0 * psd, dt_s**2 / 2.0 * psd, dt_s * psd


def _outputs(state: TrackerState) -> tuple[np.ndarray, ...]:
    """The kernels' output arrays (_OUTPUTS) for the tracks of ``state``."""
    n = state.x.shape[0]
    return (np.empty((n, 4)), np.empty((4, 4, n)), np.empty(n), np.empty((n, 3)), np.empty(state.class_loglik.shape),
            np.empty(n), np.empty(n, np.uint32), np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int64),
            np.empty(n), np.empty(n, np.uint8), np.empty(n, np.int32), np.empty(n, np.bool_))


def _quiet_state(state: TrackerState, t_ns: int, counters: TrackerCounters,
                 outputs: tuple[np.ndarray, ...]) -> TrackerState:
    """The new state from the kernels' ``outputs`` of a quiet frame, with ``counters``."""
    x, sym, yaw, size, class_ll, e, hh, hits, misses, last_hit, nis, mask, trusted, confirmed = outputs
    return TrackerState(
        t_ns, state.next_id, state.ids, x, sym.transpose(2, 0, 1), yaw, size, class_ll, hh, hits, misses, confirmed,
        e, last_hit, nis, mask, trusted, state.mode_prob, state.xm, state.pm, counters)


_FLOAT32, _INT16, _BOOL = np.dtype(np.float32), np.dtype(np.int16), np.dtype(np.bool_)


def quiet_cv_message(state: TrackerState, detections: Detections3D, ego: EgoState,
                     cfg: TrackerConfig) -> tuple[TrackerState | None, bool]:
    """``tracker_update(state, detections, ego, cfg)`` for a clean, quiet frame under the CV
    motion model (the caller checks the model, the message's shapes and a state without IMM
    models), in one compiled call from the message as it came. Returns the new state, or None
    where the frame is not quiet, and whether the message passed the screen as it is: where it
    did not (a stale frame, rows to reject, an empty frame, a non-finite ego pose, arrays of
    other dtypes), tracker_update's Python path screens it."""
    t_meas = int(detections.t_ns)
    if state.t_ns is not None and t_meas < state.t_ns:
        return None, False  # stale: tracker_update counts it
    boxes, velocities, velocity_valid = detections.boxes, detections.velocities_mps, detections.velocity_valid
    labels, scores = detections.labels, detections.scores
    ego_cov = np.asarray(ego.covariance, dtype=np.float64)
    # The message types' own dtypes (any other goes the Python way), and a covariance with the
    # pose's 3 x 3 block.
    if not (boxes.dtype == _FLOAT32 and velocities.dtype == _FLOAT32 and scores.dtype == _FLOAT32
            and labels.dtype == _INT16 and velocity_valid.dtype == _BOOL and ego_cov.ndim == 2
            and ego_cov.shape[0] >= 3 and ego_cov.shape[1] >= 3):
        return None, False
    ego_x, ego_y, ego_yaw = ego.pose.tolist()  # Python floats, as frames.ego_pose_at takes them
    src = cfg.source(detections.source)
    outputs = _outputs(state)
    status = _quiet_cv_message(
        state.x, state.p, *_predict_terms(state, t_meas, cfg),
        state.existence, state.hit_history, state.hits, state.misses, state.last_hit_ns, state.last_nis,
        state.source_mask, state.trusted_misses, state.confirmed, state.yaw, state.size, state.class_loglik,
        boxes, velocities, velocity_valid, labels, scores, t_meas,
        ego_x, ego_y, ego_yaw, float(ego.speed_mps), float(ego.yaw_rate_rps), (t_meas - ego.t_ns) * 1e-9, ego_cov,
        src.pos_sigma_m**2, src.vel_sigma_mps**2, cfg.source_bit_int(detections.source), src.confirms_alone,
        *_coverage_terms(src), *_config_terms(cfg), *outputs)
    if status == UNSCREENED:
        return None, False
    if status == NOT_QUIET:
        return None, True
    return _quiet_state(state, t_meas, state.counters.frame_added(), outputs), True


def quiet_cv_frame(state: TrackerState, frame, src: SourceModel, cfg: TrackerConfig,
                   class_log_terms: tuple[np.ndarray, np.ndarray]) -> TrackerState | None:
    """``apply_frame(state, frame, src, <the Cartesian update>, cfg)`` for a quiet frame under
    the CV motion model (the caller checks the model, a shape-valid frame and a state without
    IMM models); None when the frame is not quiet. ``class_log_terms``: apply_frame's
    (log_score, log_other) of the frame's scores, numpy's logarithms."""
    pose, meas = frame.pose, frame.meas
    log_score, log_other = class_log_terms
    yaw_rad = pose[2]
    outputs = _outputs(state)
    status = _quiet_cv_frame(
        state.x, state.p, *_predict_terms(state, frame.t_ns, cfg),
        state.existence, state.hit_history, state.hits, state.misses, state.last_hit_ns, state.last_nis,
        state.source_mask, state.trusted_misses, state.confirmed, state.yaw, state.size, state.class_loglik,
        meas.z, meas.r, meas.velocity_valid, meas.z[:, 0].argsort(kind="stable"), meas.yaw, frame.sizes,
        frame.labels, log_score, log_other, frame.scores, frame.t_ns, math.cos(yaw_rad), math.sin(yaw_rad),
        float(pose[0]), float(pose[1]), cfg.source_bit_int(frame.source), src.confirms_alone,
        *_coverage_terms(src), *_config_terms(cfg), *outputs)
    if status == NOT_QUIET:
        return None
    return _quiet_state(state, frame.t_ns, state.counters.add(frames=1, **frame.rejected), outputs)
