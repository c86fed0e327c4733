"""The degradation policy, declared as data: a table of rules mapping health to a mode and limits.

A rule fires when at least ``min_lost`` of its ``streams`` are lost, or when its ``stage`` flag is set.
The most severe firing rule decides the mode; every firing rule's reason is reported.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.messages import Mode, ModeLimits


@dataclass(frozen=True, slots=True)
class PolicyRule:
    mode: Mode
    reason: str
    streams: tuple[str, ...] = ()
    min_lost: int = 1
    stage_flag: str = ""  # a named stage condition, e.g. "planning.missed_3", "control.stale_input"


MODE_LIMITS: dict[Mode, ModeLimits] = {
    Mode.NOMINAL: ModeLimits(),
    Mode.DEGRADED: ModeLimits(speed_cap_mps=20.0, time_gap_s=2.5, lane_change_allowed=False),
    Mode.MINIMAL_RISK: ModeLimits(speed_cap_mps=20.0, time_gap_s=2.5, lane_change_allowed=False,
                                  stop_decel_mps2=2.0, hazard=True),
    Mode.EMERGENCY_STOP: ModeLimits(speed_cap_mps=0.0, time_gap_s=3.0, lane_change_allowed=False,
                                    stop_decel_mps2=6.0, hazard=True),
}


def evaluate(rules: tuple[PolicyRule, ...], lost: frozenset[str], flags: frozenset[str]) -> tuple[Mode, str]:
    """Mode demanded by the table for this health picture, and the reasons (';'-joined)."""
    mode, reasons = Mode.NOMINAL, []
    for rule in rules:
        fired = (rule.stage_flag and rule.stage_flag in flags) or (
            rule.streams and sum(s in lost for s in rule.streams) >= rule.min_lost)
        if fired:
            reasons.append(rule.reason)
            mode = max(mode, rule.mode)
    return Mode(mode), "; ".join(reasons)
