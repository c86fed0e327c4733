"""Stage health from the scheduler's timing records and the stack's per-stage counters.

Per stage: deadline misses over a sliding window of its last runs (a bit mask, one bit per run),
and when it last produced a non-finite output or its detector declared itself unhealthy (from the
growth of the stack's counters, so the stack needs no safety logic of its own). Exceptions are
flagged by the stack itself, which keeps the time of the last one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from core.clock import s_to_ns
from core.config import rng
from core.messages import StageTiming
from core.records import fast_frozen_init

NEVER_NS = -(2**62)


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class StageWatchConfig:
    window_runs: int = field(default=20, metadata=rng(1, 60))
    # Flag when this many of the window's runs missed: three in four, so that a loaded machine's
    # frequent overruns (a third of fusion's runs on two shared cores) are not a fault, but a stage
    # that overruns as a rule is.
    max_misses_in_window: int = field(default=15, metadata=rng(1, 60))
    # A stage event (non-finite output, unhealthy detector) is held this long.
    event_hold_s: float = field(default=1.0, metadata=rng(0.0, 60.0))

    def __post_init__(self) -> None:
        # A window of fewer runs can never hold that many misses: the watchdog would never fire.
        if self.max_misses_in_window > self.window_runs:
            raise ValueError(f"max_misses_in_window ({self.max_misses_in_window}) must be <= window_runs "
                             f"({self.window_runs})")


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class StageCounts:
    """What the stack counted for one stage so far (monotonic totals)."""

    nonfinite_outputs: int = 0
    unhealthy_frames: int = 0


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class StageRecord:
    miss_bits: int = 0  # bit i: the run i runs ago missed its deadline
    counts: StageCounts = StageCounts()
    last_nonfinite_ns: int = NEVER_NS
    last_unhealthy_ns: int = NEVER_NS

    def misses_in_window(self) -> int:
        return self.miss_bits.bit_count()


_NO_COUNTS = StageCounts()
NO_FLAGS: frozenset[str] = frozenset()  # one shared empty flag set: nearly every 100 Hz run raises none


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class StageWatch:
    stages: dict[str, StageRecord] = field(default_factory=dict)
    timings_seen: int = 0  # how many of the scheduler's timing records have been read
    # Derived from ``stages`` once per change of the records (in ideal mode a few times a run), so
    # that the 100 Hz step compares three numbers instead of walking every record: the most misses
    # in any stage's window (-1 without stages), the latest non-finite output of any stage and the
    # latest unhealthy frame of any detector (perception.* stage).
    most_misses: int = field(init=False, repr=False, compare=False)
    last_nonfinite_ns: int = field(init=False, repr=False, compare=False)
    last_unhealthy_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        most, nonfinite, unhealthy = -1, NEVER_NS, NEVER_NS
        for name, r in self.stages.items():
            most = max(most, r.misses_in_window())
            nonfinite = max(nonfinite, r.last_nonfinite_ns)
            if name.startswith("perception."):
                unhealthy = max(unhealthy, r.last_unhealthy_ns)
        object.__setattr__(self, "most_misses", most)
        object.__setattr__(self, "last_nonfinite_ns", nonfinite)
        object.__setattr__(self, "last_unhealthy_ns", unhealthy)


def watch_step(watch: StageWatch, timings: Sequence[StageTiming], counts: Mapping[str, StageCounts] | None,
               t_ns: int, cfg: StageWatchConfig) -> tuple[StageWatch, frozenset[str]]:
    """Read the timing records added since the last step and the counters; return the flags.
    ``counts`` None: the caller knows no counter moved since its last call (nothing to compare)."""
    stages = watch.stages
    # Most steps bring no timing record (ideal mode passes none) and no counter change: then the
    # records stand as they are and only the time-dependent flags below are re-evaluated.
    if counts is None:
        counts = {}
    if len(timings) > watch.timings_seen or (counts and any(
            c != (stages[name].counts if name in stages else _NO_COUNTS) for name, c in counts.items())):
        stages = dict(stages)
        mask = (1 << cfg.window_runs) - 1
        for rec in timings[watch.timings_seen:]:
            r = stages.get(rec.stage) or StageRecord()
            stages[rec.stage] = StageRecord(((r.miss_bits << 1) | int(rec.missed)) & mask, r.counts,
                                            r.last_nonfinite_ns, r.last_unhealthy_ns)
        for name, c in counts.items():
            r = stages.get(name) or StageRecord()
            if c != r.counts:
                stages[name] = StageRecord(
                    r.miss_bits, c,
                    t_ns if c.nonfinite_outputs > r.counts.nonfinite_outputs else r.last_nonfinite_ns,
                    t_ns if c.unhealthy_frames > r.counts.unhealthy_frames else r.last_unhealthy_ns)
        watch = StageWatch(stages, len(timings))
    # Some stage within a limit <=> the extreme over the stages within it (the summaries above).
    hold_ns = s_to_ns(cfg.event_hold_s)
    deadline_window = watch.most_misses >= cfg.max_misses_in_window
    nonfinite = t_ns - watch.last_nonfinite_ns <= hold_ns
    unhealthy = t_ns - watch.last_unhealthy_ns <= hold_ns
    if not (deadline_window or nonfinite or unhealthy):
        return watch, NO_FLAGS
    flags = set()
    if deadline_window:
        flags.add("stage.deadline_window")
    if nonfinite:
        flags.add("stage.nonfinite")
    if unhealthy:
        flags.add("detector.unhealthy")
    return watch, frozenset(flags)
