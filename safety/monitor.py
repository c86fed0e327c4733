"""The safety monitor step (100 Hz): health -> demanded mode via the policy table, with hysteresis.

Escalation is immediate. Recovery to a less severe mode needs the lower demand to hold for
``recovery_hold_s`` without interruption. Every transition is kept with its time and reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.clock import s_to_ns
from core.config import rng
from core.messages import Mode, SafetyStatus
from safety.health import HealthState, StreamSpec, stream_alive
from safety.policy import MODE_LIMITS, PolicyRule, evaluate

DEFAULT_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(Mode.DEGRADED, "lidar lost", streams=("lidar",)),
    PolicyRule(Mode.MINIMAL_RISK, "two object sensors lost", streams=("camera", "lidar", "radar"), min_lost=2),
    PolicyRule(Mode.MINIMAL_RISK, "oracle object sensor lost", streams=("oracle",)),
    PolicyRule(Mode.MINIMAL_RISK, "ego localisation lost", streams=("ego",)),
    PolicyRule(Mode.MINIMAL_RISK, "planner missed 3 deadlines in a row", stage_flag="planning.missed_3"),
    PolicyRule(Mode.MINIMAL_RISK, "a stage raised an exception", stage_flag="stage.exception"),
    PolicyRule(Mode.EMERGENCY_STOP, "control input older than its timeout", stage_flag="control.stale_input"),
)


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    recovery_hold_s: float = field(default=2.0, metadata=rng(0.0, 60.0))


@dataclass(frozen=True, slots=True)
class Transition:
    t_ns: int
    mode: Mode
    reason: str


@dataclass(frozen=True, slots=True)
class MonitorState:
    mode: Mode = Mode.NOMINAL
    reason: str = ""
    lower_demand_since_ns: int = -1  # when the demand first fell below the current mode; -1: it did not
    transitions: tuple[Transition, ...] = ()


def safety_step(state: MonitorState, health: HealthState, streams: tuple[StreamSpec, ...],
                flags: frozenset[str], rules: tuple[PolicyRule, ...], t_ns: int,
                cfg: SafetyConfig) -> tuple[MonitorState, SafetyStatus]:
    alive = {s.name: stream_alive(health, s, t_ns) for s in streams}
    lost = frozenset(name for name, ok in alive.items() if not ok)
    demanded, reason = evaluate(rules, lost, flags)
    if demanded > state.mode:
        state = MonitorState(demanded, reason, -1, state.transitions + (Transition(t_ns, demanded, reason),))
    elif demanded < state.mode:
        since = state.lower_demand_since_ns if state.lower_demand_since_ns >= 0 else t_ns
        if t_ns - since >= s_to_ns(cfg.recovery_hold_s):
            why = reason or f"recovered: healthy for {cfg.recovery_hold_s:g} s"
            state = MonitorState(demanded, why, -1, state.transitions + (Transition(t_ns, demanded, why),))
        else:
            state = replace(state, lower_demand_since_ns=since)
    elif state.lower_demand_since_ns >= 0:
        state = replace(state, lower_demand_since_ns=-1)
    return state, SafetyStatus(t_ns, state.mode, state.reason, MODE_LIMITS[state.mode], alive)
