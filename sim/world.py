"""The simulated world: road, ego dynamics, traffic and scripted actors, advanced in lock step.

The world is the one stateful object of sim/ (the runtime owns it like a plant): ``step`` applies
the ego's actuator commands for dt and moves every other vehicle with one vectorised traffic update.
All randomness (traffic placement, desired speeds, colours) is drawn once from the seed at
construction, so a run is a pure function of (scenario, seed, command sequence).
"""
from __future__ import annotations

import math
import numpy as np

from core.messages import LABEL_VEHICLE
from sim.actors import (KIND_HARD_BRAKE, KIND_STOPPED, KIND_TRAFFIC, actor_columns, cut_in_starts,
                        next_trigger_t_s, time_to_collision_s, update_triggers)
from sim.scenario import ScenarioConfig, build_road
from sim.traffic import (Fleet, IdmParams, MobilParams, Neighbourhood, TrafficState, idm_terms,
                         lane_span, mobil_targets, signed_half_widths, spawn_positions, start_lane_changes)
from sim.traffic_kernels import ROW_A, ROW_D, ROW_LC_T0, ROW_S, ROW_V, follow_accel
from sim.truth import ActorsTruth, EgoTruth
from sim.vehicle_model import BicycleState
from sim.world_kernels import (EGO_CENTRE_X, EGO_CENTRE_Y, EGO_STEER, EGO_V, EGO_X, EGO_YAW, ROW_ACTIVE, STEP_ROWS,
                               actor_truth, buffer_length, ego_slice, row_slices, step_constants, truth_slices,
                               vehicle_constants, world_step)

NS_PER_S = 1_000_000_000
ACTOR_CLEARANCE_M = 30.0  # traffic is not spawned this close to a scripted actor in its lanes


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class World:
    def __init__(self, scenario: ScenarioConfig, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng(int(seed))
        self.scenario = scenario
        self.road = build_road(scenario.road)
        self.vehicle = scenario.ego.vehicle
        self.t_ns = 0
        self._idm = IdmParams.from_config(scenario.traffic)
        self._idm_terms = idm_terms(self._idm)
        self._mobil = MobilParams.from_config(scenario.traffic)
        self._mobil_period_s = scenario.traffic.mobil_period_s
        self._next_mobil_t_s = 0.0

        ego_cfg = scenario.ego
        xy, heading = self.road.to_cartesian(ego_cfg.s_m, self.road.lane_center_d(ego_cfg.lane))
        e = BicycleState(float(xy[0]), float(xy[1]), float(heading), ego_cfg.speed_mps, 0.0, 0.0)
        self._ego_s_m = float(ego_cfg.s_m)
        # The ego's EGO_FIELDS (world_kernels: its BicycleState fields, box centre and yaw rate),
        # read-only: from the first step on, the step buffer's ego slice (world_step reads the ego
        # from it and writes the next); ego_truth's pose and centre arrays are views of it.
        r = self.vehicle.rear_axle_to_center_m
        self._set_ego_fields(_read_only(np.array([
            *e, e.x_m + r * math.cos(e.yaw_rad), e.y_m + r * math.sin(e.yaw_rad),
            e.v_mps * math.tan(e.steer_rad) / self.vehicle.wheelbase_m])))
        self._fleet, self._state = self._populate(scenario, rng)
        # The actors' truth of the current state: computed with the state (by world_step, or here
        # for the start) into a buffer; actors_truth wraps it once per tick.
        self._truth_t_ns = -1
        self._actors_truth: ActorsTruth | None = None
        self._on_road_changed(self._state.active)
        self._truth_buffer, _ = actor_truth(
            self._state.s_m, self._state.d_m, self._state.v_mps, self._state.a_mps2, self._state.lc_t0_s,
            self._state.lane, self._state.lc_from_d_m, self._truth_on, self.t_ns / NS_PER_S, *self._truth_constants)
        self._truth_at = truth_slices(0, self._truth_on.shape[0])

    # -- construction ------------------------------------------------------------------------------
    def _populate(self, scenario: ScenarioConfig, rng: np.random.Generator) -> tuple[Fleet, TrafficState]:
        cfg, road = scenario.traffic, self.road
        act = actor_columns(scenario.actors)
        keep_clear = []
        for a in scenario.actors:
            for lane in {a.lane, a.lane if a.target_lane is None else a.target_lane}:
                keep_clear.append((lane, a.s_m - ACTOR_CLEARANCE_M, a.s_m + ACTOR_CLEARANCE_M))
        t_s, t_lane, t_v0 = spawn_positions(cfg, road, scenario.ego.s_m, scenario.ego.lane, keep_clear, rng)
        n_a, n_t = act["kind"].shape[0], t_s.shape[0]
        n = n_a + n_t

        def both(actor_col, traffic_value, dtype):
            return np.concatenate([actor_col.astype(dtype), np.broadcast_to(traffic_value, (n_t,)).astype(dtype)])

        kind = both(act["kind"], KIND_TRAFFIC, np.int8)
        fleet = Fleet(
            ids=np.arange(1, n + 1, dtype=np.int64),  # scripted actors first, in scenario order
            kind=kind,
            v0_mps=both(act["v0_mps"], t_v0, np.float64),
            length_m=both(act["length_m"], cfg.length_m, np.float64),
            width_m=both(act["width_m"], cfg.width_m, np.float64),
            height_m=both(act["height_m"], cfg.height_m, np.float64),
            labels=both(act["labels"], LABEL_VEHICLE, np.int16),
            trigger_t_s=both(act["trigger_t_s"], np.inf, np.float64),
            decel_mps2=both(act["decel_mps2"], 0.0, np.float64),
            target_lane=both(act["target_lane"], -1, np.int64),
            lane_change_s=both(act["lane_change_s"], cfg.lane_change_duration_s, np.float64),
            trigger_ttc_s=both(act["trigger_ttc_s"], np.nan, np.float64),
            may_change=kind == KIND_TRAFFIC,
            colors_bgr=rng.integers(40, 236, size=(n, 3), dtype=np.uint8),
        )
        lane = both(act["lane"], t_lane, np.int64)
        s = both(act["s_m"], t_s, np.float64)
        v = both(act["v_mps"], t_v0, np.float64)
        self._has_scripts = bool((kind != KIND_TRAFFIC).any())
        self._set_run_constants(fleet)
        state = TrafficState(s_m=s, d_m=road.lane_center_d(lane), v_mps=v, a_mps2=np.zeros(n),
                             lane=lane, lc_from_d_m=road.lane_center_d(lane), lc_t0_s=np.full(n, np.nan),
                             active=s < road.length_m, triggered=np.zeros(n, dtype=bool))
        self._next_trigger_t_s = next_trigger_t_s(fleet.kind, fleet.trigger_t_s, state.triggered)
        self._pending_scripts = self._waiting_scripts(fleet, state.triggered)
        self._braking = np.zeros(n, dtype=bool)  # triggered hard-brakers; changes only at triggers
        # Start traffic no faster than the IDM equilibrium for its gap, so nobody brakes hard at t=0.
        _, gap = self._follow(fleet, state, *self._ego_frenet())
        v_eq = np.maximum((gap - self._idm.min_gap_m) / self._idm.time_gap_s, 0.0)
        v_start = np.where(kind == KIND_TRAFFIC, np.minimum(v, v_eq), v)  # inf gap: v stays
        return fleet, TrafficState(s, state.d_m, v_start, state.a_mps2, lane, state.lc_from_d_m, state.lc_t0_s,
                                   state.active, state.triggered)

    def _set_run_constants(self, fleet: Fleet) -> None:
        """Per-run constants of the step, derived once from the fleet (which never changes)."""
        n = fleet.length_m.shape[0]
        self._n = n
        self._length_all = np.append(fleet.length_m, self.vehicle.length_m)
        self._v0_with_ego = np.append(fleet.v0_mps, self.road.speed_limit_mps)  # MOBIL's, the ego last
        # Bumper-gap offset between follower i and every vehicle j (the ego last): follow_gap's term.
        self._half_len_sum = 0.5 * (fleet.length_m[:, None] + self._length_all[None, :])
        self._pm_half_lanes = signed_half_widths(self.road, fleet.width_m)
        self._stopped = fleet.kind == KIND_STOPPED
        road = self.road
        reference_line = (road.s_m, road.xy_m, road.heading_rad, road.curvature_1pm, road.length_m,
                          road.samples_per_m, road.is_straight, *road.line_cos_sin)
        centre_offset_lanes = 0.5 * (road.num_lanes - 1)
        # world_step's last argument (world_kernels.step_constants) and actor_truth's trailing ones
        # (_TRUTH_CONSTANTS).
        self._step_constants = step_constants(
            self._pm_half_lanes, self._half_len_sum, fleet.lane_change_s, fleet.decel_mps2, self._stopped,
            self._idm_terms, self._idm.delta, *reference_line, road.lane_width_m, 0.5 * road.num_lanes,
            road.num_lanes - 1, centre_offset_lanes, 0.5 * self.vehicle.width_m, vehicle_constants(self.vehicle),
            fleet.v0_mps)
        self._truth_constants = (fleet.lane_change_s, *reference_line, road.lane_width_m, centre_offset_lanes)
        self._step_rows = row_slices(n)
        self._ego_at = ego_slice(n)
        self._buffer_length = buffer_length(n)

    # -- the ego ----------------------------------------------------------------------------------
    def _set_ego_fields(self, fields: np.ndarray) -> None:
        """The ego is now ``fields`` (EGO_FIELDS, read-only); its pose and centre arrays, views of
        them, are shared by the tick's ego truths (a fresh pair per call cost two array constructions)."""
        self._ego_fields = fields
        self._ego_pose, self._ego_centre_xy = fields[EGO_X:EGO_YAW + 1], fields[EGO_CENTRE_X:EGO_CENTRE_Y + 1]

    @property
    def _ego(self) -> BicycleState:
        """The ego's dynamic state (from its fields: the rarer paths and the tests ask for it)."""
        return BicycleState(*self._ego_fields[:EGO_STEER + 1].tolist())

    # -- neighbours --------------------------------------------------------------------------------
    def _ego_frenet(self) -> tuple[float, float]:
        """Frenet (s, d) of the ego's box centre, tracked from the last step's s (Road.track_frenet:
        the ego moves well under a metre per step, a fraction of a nearest-sample search's cost)."""
        cx, cy = self._ego_fields[EGO_CENTRE_X:EGO_CENTRE_Y + 1].tolist()
        self._ego_s_m, d = self.road.track_frenet(cx, cy, self._ego_s_m)
        return self._ego_s_m, d

    def _ego_centre(self) -> tuple[float, float]:
        e, r = self._ego, self.vehicle.rear_axle_to_center_m
        return e.x_m + r * math.cos(e.yaw_rad), e.y_m + r * math.sin(e.yaw_rad)

    def _ego_span(self, ego_d: float) -> tuple[int, int]:
        """Lowest and highest lane the ego's footprint touches (lane_span's rule, in scalars)."""
        road, half_w = self.road, 0.5 * self.vehicle.width_m
        base, top = ego_d / road.lane_width_m + 0.5 * road.num_lanes, road.num_lanes - 1
        return (min(max(math.floor(base - half_w / road.lane_width_m), 0), top),
                min(max(math.floor(base + half_w / road.lane_width_m), 0), top))

    def _follow(self, fleet: Fleet, state: TrafficState, ego_s: float, ego_d: float):
        """(IDM acceleration behind each vehicle's leader, bumper gap to it (inf: none)), the ego
        (at Frenet ``ego_s``, ``ego_d``) a leader like any other vehicle."""
        ego_lo, ego_hi = self._ego_span(ego_d)
        road = self.road
        free_term = state.v_mps / fleet.v0_mps
        free_term **= self._idm.delta  # numpy's power (world_step's idm_free_term gives its bits)
        return follow_accel(state.s_m, state.d_m, state.v_mps, state.lane, state.active, self._pm_half_lanes,
                            self._half_len_sum, free_term, ego_s, self._ego.v_mps, ego_lo, ego_hi,
                            road.lane_width_m, 0.5 * road.num_lanes, road.num_lanes - 1, self._idm_terms)

    # -- stepping ----------------------------------------------------------------------------------
    def step(self, accel_cmd_mps2: float, steer_cmd_rad: float, dt_ns: int) -> None:
        """Advance by dt_ns with the ego's commands held. Raises ValueError on bad input."""
        # type() first: a plain int (every runtime call) settles it without the two isinstance calls.
        if (type(dt_ns) is not int and (isinstance(dt_ns, bool) or not isinstance(dt_ns, np.integer))) or dt_ns <= 0:
            raise ValueError(f"dt_ns must be a positive integer, got {dt_ns!r}")
        accel_cmd_mps2, steer_cmd_rad = float(accel_cmd_mps2), float(steer_cmd_rad)
        if not (math.isfinite(accel_cmd_mps2) and math.isfinite(steer_cmd_rad)):
            raise ValueError(f"non-finite ego command: accel {accel_cmd_mps2}, steer {steer_cmd_rad}")
        dt_s, t_s = dt_ns / NS_PER_S, self.t_ns / NS_PER_S
        fleet, state = self._fleet, self._state

        # Car following sees the lanes of the step's start; the scripts and MOBIL below decide lane
        # changes that only the integration sees (neither reads the accelerations). They need the
        # ego's Frenet coordinates first; on other steps world_step tracks them itself.
        lane_followed = state.lane
        track_ego, ego_s, ego_d = True, self._ego_s_m, 0.0
        script_due = self._has_scripts and t_s >= self._next_trigger_t_s
        if script_due or t_s >= self._next_mobil_t_s:
            ego_s, ego_d = self._ego_frenet()
            track_ego = False
            if script_due and self._a_script_starts(state, t_s, ego_s):
                state = self._trigger(fleet, state, t_s, ego_s)
            if t_s >= self._next_mobil_t_s:
                state = self._lane_change_decisions(fleet, state, ego_s, ego_d, t_s)
                self._next_mobil_t_s += self._mobil_period_s * max(1.0, math.ceil(
                    (t_s - self._next_mobil_t_s) / self._mobil_period_s))
        t1_ns = self.t_ns + int(dt_ns)
        self._state = self._step_all(accel_cmd_mps2, steer_cmd_rad, lane_followed, state, track_ego, ego_s, ego_d,
                                     t_s, dt_s, t1_ns)
        self.t_ns = t1_ns

    def _step_all(self, accel_cmd_mps2: float, steer_cmd_rad: float, lane_followed: np.ndarray, state: TrafficState,
                  track_ego: bool, ego_s: float, ego_d: float, t_s: float, dt_s: float, t1_ns: int) -> TrafficState:
        """The traffic at t_s + dt_s (the tick t1_ns), its truth and the ego, in one compiled call
        (world_kernels.world_step): the ego's Frenet tracking (unless ``track_ego`` is False and
        ``ego_s``, ``ego_d`` are this step's), _follow's IDM accelerations (in ``lane_followed``, with
        numpy's power for the free-road term: traffic_kernels.idm_free_term),
        the scripts' overrides (sim.actors.scripted_accel), traffic.integrate, to_cartesian and the
        actors' motion columns of the new state, and step_bicycle with the commands held, with those
        steps' bits. Sets the ego's state; returns the traffic's."""
        buf = np.empty(self._buffer_length)
        any_leaving, any_changing, _, self._ego_s_m, _ = world_step(
            self._ego_fields, accel_cmd_mps2, steer_cmd_rad, track_ego, ego_s, ego_d, state.s_m, state.d_m,
            state.v_mps, lane_followed, state.lane, state.active, state.lc_from_d_m, state.lc_t0_s, self._braking, t_s,
            dt_s, t1_ns / NS_PER_S, buf, self._step_constants)
        # The ego's fields, read-only: the truth's pose and centre are views of this view, so they
        # are read-only too (one flag set instead of two).
        ego_fields = buf[self._ego_at]
        ego_fields.setflags(write=False)  # the method: cheaper than setting through the flags object
        self._set_ego_fields(ego_fields)
        rows = self._step_rows
        active = state.active
        if any_leaving:
            active = buf[rows[ROW_ACTIVE]] > 0.0
            self._on_road_changed(active)
        self._truth_buffer = buf
        self._truth_at = self._step_truth_at
        # d and the lane-change starts move only while a lane change runs (traffic.integrated_state).
        if any_changing:
            d1, lc_t0 = buf[rows[ROW_D]], buf[rows[ROW_LC_T0]]
        else:
            d1, lc_t0 = state.d_m, state.lc_t0_s
        return TrafficState(buf[rows[ROW_S]], d1, buf[rows[ROW_V]], buf[rows[ROW_A]], state.lane, state.lc_from_d_m,
                            lc_t0, active, state.triggered)

    @staticmethod
    def _waiting_scripts(fleet: Fleet, triggered: np.ndarray) -> list[tuple[int, float, float, float]]:
        """(row, trigger time [s], trigger time to collision [s] (NaN: none), half length [m]) of
        each scripted vehicle not yet triggered."""
        rows = np.flatnonzero((fleet.kind != KIND_TRAFFIC) & ~triggered)
        return list(zip(rows.tolist(), fleet.trigger_t_s[rows].tolist(), fleet.trigger_ttc_s[rows].tolist(),
                        (0.5 * fleet.length_m[rows]).tolist()))

    def _a_script_starts(self, state: TrafficState, t_s: float, ego_s_m: float) -> bool:
        """Whether _trigger would start a script now: update_triggers' condition on the few
        scripted vehicles still waiting, in Python floats with _trigger's operations (a cut-in
        waiting for its time to collision is asked every step, and nearly always says no)."""
        ego_back = ego_s_m + 0.5 * self.vehicle.length_m
        ego_v = float(self._ego_fields[EGO_V])
        for row, trigger_t_s, trigger_ttc_s, half_length in self._pending_scripts:
            if not t_s >= trigger_t_s:
                continue
            if trigger_ttc_s != trigger_ttc_s:  # NaN: on time alone
                return True
            gap = float(state.s_m[row]) - half_length - ego_back
            closing = ego_v - float(state.v_mps[row])
            ttc = gap / closing if (closing > 0.0 and gap >= 0.0) else math.inf  # time_to_collision_s
            if ttc <= trigger_ttc_s:
                return True
        return False

    def _trigger(self, fleet: Fleet, state: TrafficState, t_s: float, ego_s_m: float) -> TrafficState:
        """Start the scripts whose trigger time (and time to collision, ``ego_s_m`` the ego centre's
        arc length) has come (called only once _a_script_starts says one does)."""
        gap = state.s_m - 0.5 * fleet.length_m - (ego_s_m + 0.5 * self.vehicle.length_m)
        ttc = time_to_collision_s(gap, self._ego.v_mps - state.v_mps)
        triggered, newly = update_triggers(fleet.kind, fleet.trigger_t_s, state.triggered, t_s,
                                           fleet.trigger_ttc_s, ttc)
        self._next_trigger_t_s = next_trigger_t_s(fleet.kind, fleet.trigger_t_s, triggered)
        self._pending_scripts = self._waiting_scripts(fleet, triggered)
        self._braking = (fleet.kind == KIND_HARD_BRAKE) & triggered
        if not newly.any():
            return state
        state = TrafficState(state.s_m, state.d_m, state.v_mps, state.a_mps2, state.lane, state.lc_from_d_m,
                             state.lc_t0_s, state.active, triggered)
        return start_lane_changes(state, cut_in_starts(fleet.kind, newly), fleet.target_lane, t_s)

    def _lane_change_decisions(self, fleet: Fleet, state: TrafficState, ego_s: float, ego_d: float,
                               t_s: float) -> TrafficState:
        """MOBIL's decisions among every vehicle with the ego (at Frenet ``ego_s``, ``ego_d``)
        appended as the last row."""
        eligible = fleet.may_change & state.active & ~np.isfinite(state.lc_t0_s)
        if not eligible.any():
            return state
        lo, hi = lane_span(self.road, state.d_m, fleet.width_m)
        ego_lo, ego_hi = self._ego_span(ego_d)
        ego_lane = int(self.road.lane_of(ego_d))
        # np.append's own operation (a concatenation), without its two calls of argument handling.
        nb = Neighbourhood(s_m=np.concatenate((state.s_m, (ego_s,))),
                           v_mps=np.concatenate((state.v_mps, (float(self._ego_fields[EGO_V]),))),
                           v0_mps=self._v0_with_ego, length_m=self._length_all,
                           lane=np.concatenate((state.lane, (ego_lane,))), lo=np.concatenate((lo, (ego_lo,))),
                           hi=np.concatenate((hi, (ego_hi,))), active=np.concatenate((state.active, (True,))))
        target = mobil_targets(nb, np.concatenate((eligible, (False,))), self.road.num_lanes, self._idm,
                               self._mobil)[:-1]
        return start_lane_changes(state, target >= 0, target, t_s)

    # -- truth -------------------------------------------------------------------------------------
    @property
    def end_ns(self) -> int:
        """Logical time at which the scenario's duration is over."""
        return int(round(self.scenario.duration_s * NS_PER_S))

    def ego_truth(self) -> EgoTruth:
        p = self.vehicle
        _, _, _, v, a, steer, _, _, yaw_rate = self._ego_fields.tolist()
        # Positional (t_ns, pose, center_xy_m, speed, accel, yaw rate, steer, length, width, height):
        # the keyword form costs a microsecond more, every tick. The arrays are read-only, shared by
        # the truths of one tick.
        return EgoTruth(self.t_ns, self._ego_pose, self._ego_centre_xy, v, a, yaw_rate, steer, p.length_m, p.width_m,
                        p.height_m)

    def _on_road_changed(self, active: np.ndarray) -> None:
        """Gather the per-vehicle constants of the rows on the road (``active``), which change only
        when a vehicle leaves it: handing out the same column objects meanwhile lets consumers (the
        metrics) recognise an unchanged actor set by identity."""
        fleet = self._fleet
        on = np.flatnonzero(active)
        self._truth_on = on
        self._truth_columns = (fleet.ids[on], fleet.length_m[on], fleet.width_m[on], fleet.height_m[on],
                               fleet.labels[on], fleet.colors_bgr[on])
        for col in self._truth_columns:  # shared by many ticks' truths: nobody may write into them
            col.flags.writeable = False
        self._step_truth_at = truth_slices(STEP_ROWS * self._n, on.shape[0])

    def actors_truth(self) -> ActorsTruth:
        """Active actors (past the road end they leave the world); cached per time step."""
        if self._actors_truth is not None and self._truth_t_ns == self.t_ns:
            return self._actors_truth
        ids, length, width, height, labels, colors = self._truth_columns
        buf, at = self._truth_buffer, self._truth_at
        # Positional, in ActorsTruth's field order: as in ego_truth, a microsecond a tick.
        truth = ActorsTruth(self.t_ns, ids, buf[at.xy].reshape(-1, 2), buf[at.yaw], buf[at.speed], buf[at.accel],
                            length, width, height, labels, colors)
        self._actors_truth, self._truth_t_ns = truth, self.t_ns
        return truth
