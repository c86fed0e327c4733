"""The monitor's 100 Hz shortcuts against the plain forms they replaced (kept here as references),
over randomized inputs: the rate check's telescoped interval sum, the stage watch's per-change
summaries, and the policy table's unrolled rule test."""
from __future__ import annotations

import numpy as np

from core.messages import Mode, StageTiming
from safety.health import RATE_MIN_INTERVALS, HealthState, StreamSpec, observe, stream_rate_ok
from safety.policy import PolicyRule, PolicyTable, evaluate
from safety.rules import DEFAULT_RULES
from safety.stage_health import NEVER_NS, StageCounts, StageWatch, StageWatchConfig, watch_step
from core.clock import s_to_ns

MS = 1_000_000


# --- references: the forms before the shortcuts ---
def _ref_stream_rate_ok(state: HealthState, spec: StreamSpec, now_ns: int) -> bool:
    h = state.streams.get(spec.name)
    if h is None or len(h.recent_arrivals_ns) <= RATE_MIN_INTERVALS:
        return True
    recent, max_age = h.recent_arrivals_ns, spec.max_age_ns
    total_ns, count = 0, 0
    for a, b in zip(recent, recent[1:]):
        if b - a <= max_age:
            total_ns += b - a
            count += 1
    if count < RATE_MIN_INTERVALS:
        return True
    open_ns = now_ns - recent[-1]
    mean = total_ns / count
    if mean < open_ns <= max_age:
        mean = (total_ns + open_ns) / (count + 1)
    return mean <= spec.rate_tolerance * spec.period_ns


def _ref_watch_flags(watch: StageWatch, t_ns: int, cfg: StageWatchConfig) -> frozenset[str]:
    hold_ns = s_to_ns(cfg.event_hold_s)
    flags = set()
    for name, r in watch.stages.items():
        if r.misses_in_window() >= cfg.max_misses_in_window:
            flags.add("stage.deadline_window")
        if t_ns - r.last_nonfinite_ns <= hold_ns:
            flags.add("stage.nonfinite")
        if t_ns - r.last_unhealthy_ns <= hold_ns and name.startswith("perception."):
            flags.add("detector.unhealthy")
    return frozenset(flags)


def _ref_evaluate(rules, lost, flags):
    if not lost and not flags:
        return Mode.NOMINAL, ""
    mode, reasons = Mode.NOMINAL, []
    for rule in rules:
        if rule.fires(lost, flags):
            reasons.append(rule.reason)
            mode = max(mode, rule.mode)
    return Mode(mode), "; ".join(reasons)


def test_rate_check_equals_reference_with_outages_and_jitter():
    rng = np.random.default_rng(3)
    spec = StreamSpec("imu", period_ns=10 * MS)
    for _ in range(300):
        h, t = HealthState(), 0
        for _ in range(int(rng.integers(1, 40))):
            t += int(rng.choice([10 * MS, 12 * MS, 25 * MS, 31 * MS, 200 * MS, 0]) + rng.integers(-MS, MS))
            h = observe(h, "imu", t, t)
            for now in (t, t + 5 * MS, t + 16 * MS, t + 29 * MS, t + 31 * MS, t + 500 * MS):
                assert stream_rate_ok(h, spec, now) == _ref_stream_rate_ok(h, spec, now)


def test_stage_watch_flags_equal_reference():
    rng = np.random.default_rng(5)
    cfg = StageWatchConfig(window_runs=6, max_misses_in_window=3, event_hold_s=0.05)
    names = ("fusion", "planning", "perception.lidar", "perception.camera")
    for _ in range(40):
        watch, timings, counts = StageWatch(), [], {n: StageCounts() for n in names}
        for step in range(60):
            t_ns = step * 10 * MS
            for n in names:
                if rng.random() < 0.5:
                    timings.append(StageTiming(n, t_ns, t_ns, 0, 1, bool(rng.random() < 0.4)))
                if rng.random() < 0.05:
                    c = counts[n]
                    counts[n] = StageCounts(c.nonfinite_outputs + int(rng.random() < 0.5),
                                            c.unhealthy_frames + int(rng.random() < 0.5))
            watch, flags = watch_step(watch, timings, dict(counts), t_ns, cfg)
            assert flags == _ref_watch_flags(watch, t_ns, cfg)
    assert StageWatch().last_nonfinite_ns == NEVER_NS and watch_step(StageWatch(), [], None, 0, cfg)[1] == frozenset()


def test_unrolled_policy_equals_reference():
    rng = np.random.default_rng(9)
    streams = sorted({s for r in DEFAULT_RULES for s in r.streams})
    flag_names = sorted({r.flag for r in DEFAULT_RULES if r.flag}) + ["other.flag"]
    rules = DEFAULT_RULES + (PolicyRule(Mode.DEGRADED, "custom", streams=("lidar", "radar"), min_lost=2,
                                        flag="stream.bad_data"),
                             PolicyRule(Mode.EMERGENCY_STOP, "custom flag", flag="stream.bad_data"))
    table = PolicyTable(rules)  # the flag-only rules indexed; a plain tuple walks the table
    assert type(DEFAULT_RULES) is PolicyTable and table == rules
    for _ in range(6000):
        lost = frozenset(s for s in streams if rng.random() < 0.15) if rng.random() < 0.5 else frozenset()
        flags = frozenset(f for f in flag_names if rng.random() < 0.1)
        expected = _ref_evaluate(rules, lost, flags)
        assert evaluate(rules, lost, flags) == expected
        assert evaluate(table, lost, flags) == expected
        assert evaluate(DEFAULT_RULES, lost, flags) == _ref_evaluate(DEFAULT_RULES, lost, flags)


def test_stream_checks_equal_the_three_checks():
    from safety.health import stream_alive, stream_bad_data, stream_checks, sync_dropped
    rng = np.random.default_rng(41)
    spec = StreamSpec("imu", period_ns=10 * MS)
    for _ in range(200):
        h, t = HealthState(start_ns=int(rng.integers(0, 50 * MS))), 0
        for _ in range(int(rng.integers(0, 30))):
            t += int(rng.choice([10 * MS, 12 * MS, 31 * MS, 200 * MS, 0]) + rng.integers(-MS, MS))
            kind = rng.random()
            if kind < 0.1:
                h = sync_dropped(h, spec, t, t + 5 * MS)
            else:
                h = observe(h, "imu", t, t, finite=kind > 0.2, well_formed=kind > 0.15)
            for now in (t, t + 16 * MS, t + 29 * MS, t + 31 * MS, t + 500 * MS):
                alive = stream_alive(h, spec, now)
                expected = (alive, stream_rate_ok(h, spec, now), stream_bad_data(h, spec, now)) if alive else (
                    False, True, False)
                assert stream_checks(h, spec, now) == expected
