"""The degradation policy, declared as data: a table of rules mapping health to a mode and limits.

A rule names its conditions: at least ``min_lost`` of its ``streams`` lost, and/or its ``flag`` set
(a named health condition, e.g. "planning.missed_3"). A rule with both needs both. The most severe
firing rule decides the mode; every firing rule's reason is reported. A rule may also ask for a
firmer stop than its mode's (``stop_decel_mps2``): while it fires, a stopping mode stops at the
firmest deceleration any firing rule asks for (``stop_limits``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from core.messages import Mode, ModeLimits


@dataclass(frozen=True, slots=True)
class PolicyRule:
    mode: Mode
    reason: str
    streams: tuple[str, ...] = ()
    min_lost: int = 1
    flag: str = ""
    # > 0: a stop at least this firm while the rule fires (0: the mode's own deceleration).
    stop_decel_mps2: float = 0.0

    def __post_init__(self) -> None:
        if not self.streams and not self.flag:
            raise ValueError(f"policy rule {self.reason!r} has no condition")
        if self.stop_decel_mps2 < 0.0 or (self.stop_decel_mps2 > 0.0 and self.mode < Mode.MINIMAL_RISK):
            raise ValueError(f"policy rule {self.reason!r}: stop_decel_mps2={self.stop_decel_mps2} needs a "
                             f"stopping mode (MINIMAL_RISK or EMERGENCY_STOP) and a value >= 0")
        if self.streams and not 1 <= self.min_lost <= len(self.streams):
            raise ValueError(f"policy rule {self.reason!r}: min_lost={self.min_lost} outside 1..{len(self.streams)}")

    def fires(self, lost: frozenset[str], flags: frozenset[str]) -> bool:
        # Cheapest test first: most rules wait for a flag that is not set, or for a lost stream when
        # none is lost (a rule with streams needs min_lost >= 1 of them lost).
        if self.flag:
            if self.flag not in flags:
                return False
            if not self.streams:
                return True
        return bool(lost) and sum(s in lost for s in self.streams) >= self.min_lost


MODE_LIMITS: dict[Mode, ModeLimits] = {
    Mode.NOMINAL: ModeLimits(),
    Mode.DEGRADED: ModeLimits(speed_cap_mps=20.0, time_gap_s=2.5, lane_change_allowed=False),
    # A comfortable stop in lane, hazard lights on.
    Mode.MINIMAL_RISK: ModeLimits(speed_cap_mps=20.0, time_gap_s=2.5, lane_change_allowed=False,
                                  stop_decel_mps2=2.0, hazard=True),
    Mode.EMERGENCY_STOP: ModeLimits(speed_cap_mps=0.0, time_gap_s=3.0, lane_change_allowed=False,
                                    stop_decel_mps2=6.0, hazard=True),
}


# MODE_LIMITS by position (a Mode is its int): indexing a tuple with an IntEnum costs no Python call,
# where the dict's lookup calls Enum's __hash__, written in Python.
_LIMITS_BY_MODE: tuple[ModeLimits, ...] = tuple(MODE_LIMITS[Mode(i)] for i in range(len(Mode)))


class PolicyTable(tuple):
    """A rule table: the rules in order (a tuple, as any table), and, built once with it, the rules
    that need nothing but their flag, by flag.

    With no stream lost (the monitor's picture at nearly every run) only such a rule can fire: a
    rule with streams needs at least one of them lost. ``evaluate`` then looks up the few set
    flags instead of walking the whole table (~45 rules, at 100 Hz while an obstacle is close
    ahead)."""

    flag_only: dict[str, tuple[tuple[int, PolicyRule], ...]]  # flag -> (position, rule), in table order

    def __new__(cls, rules) -> "PolicyTable":
        table = super().__new__(cls, rules)
        flag_only: dict[str, list[tuple[int, PolicyRule]]] = {}
        for position, rule in enumerate(table):
            if rule.flag and not rule.streams:
                flag_only.setdefault(rule.flag, []).append((position, rule))
        table.flag_only = {flag: tuple(rules) for flag, rules in flag_only.items()}
        return table


def evaluate(rules: tuple[PolicyRule, ...], lost: frozenset[str], flags: frozenset[str]) -> tuple[Mode, str]:
    """Mode demanded by the table for this health picture, and the reasons (';'-joined)."""
    if not lost:
        if not flags:
            # Every rule needs a lost stream or a set flag (``__post_init__`` enforces it): the healthy
            # picture, which the monitor sees at nearly every one of its 100 Hz runs, fires nothing.
            return Mode.NOMINAL, ""
        if type(rules) is PolicyTable:
            return _evaluate_flags_only(rules, flags)
    mode, reasons = Mode.NOMINAL, []
    for rule in rules:
        # ``rule.fires`` unrolled (a method call per rule and run cost more than the test): most
        # rules wait for a flag that is not set, or for a lost stream when none is lost.
        flag = rule.flag
        if flag:
            if flag not in flags:
                continue
            if rule.streams and not (lost and sum(s in lost for s in rule.streams) >= rule.min_lost):
                continue
        elif not (lost and sum(s in lost for s in rule.streams) >= rule.min_lost):
            continue
        reasons.append(rule.reason)
        if rule.mode > mode:
            mode = rule.mode
    return Mode(mode), "; ".join(reasons)


def _evaluate_flags_only(table: PolicyTable, flags: frozenset[str]) -> tuple[Mode, str]:
    """``evaluate`` with no stream lost: the flag-only rules of the set flags, in table order."""
    fired: list[tuple[int, PolicyRule]] = []
    for flag in flags:
        rules = table.flag_only.get(flag)
        if rules:
            fired.extend(rules)
    if not fired:
        return Mode.NOMINAL, ""
    fired.sort(key=_position)
    mode = Mode.NOMINAL
    for _, rule in fired:
        if rule.mode > mode:
            mode = rule.mode
    return Mode(mode), "; ".join(rule.reason for _, rule in fired)


def _position(fired: tuple[int, PolicyRule]) -> int:
    return fired[0]


def stop_limits(mode: Mode, rules: tuple[PolicyRule, ...], lost: frozenset[str], flags: frozenset[str]) -> ModeLimits:
    """The limits of ``mode``, its stop made as firm as the firmest firing rule asks (a mode that does
    not stop keeps its limits: the monitor may hold a mode while the rules that demanded it are
    quiet, and a DEGRADED hold never stops)."""
    limits = _LIMITS_BY_MODE[mode]
    if limits.stop_decel_mps2 <= 0.0 or (not lost and not flags):
        return limits
    firmest = max((r.stop_decel_mps2 for r in rules if r.stop_decel_mps2 > limits.stop_decel_mps2
                   and r.fires(lost, flags)), default=0.0)
    return replace(limits, stop_decel_mps2=firmest) if firmest > 0.0 else limits
