"""The safety monitor step (100 Hz): health -> demanded mode via the policy table, with hysteresis.

Escalation is immediate. Recovery to a less severe mode needs the lower demand to hold for
``recovery_hold_s`` without interruption, and steps down only to the most severe mode demanded
during that hold (then holds again for the rest of the way). Every transition is kept with its time
and reason.
A frozen stream (fresh messages repeating the same data, safety/health.py) counts as lost, for
the policy table as for everything below, and raises ``<stream>.frozen`` so that the reason names it;
so does an ego sensor whose data the ego filter keeps refusing (``<stream>.refused``) or whose
innovations are too large for its noise (``<stream>.inconsistent``; safety/ego_streams.py).
The monitor adds its own flags: per-stream rate and data quality (of streams still alive: a lost
stream is reported as lost), the loop's heartbeat (the interval between its own runs, and time
never going backwards), and it holds the ``picture.*`` flags from the last step at which some object
stream was alive, so that "an obstacle was close ahead" survives the loss of every object sensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.clock import s_to_ns
from core.config import rng
from core.messages import Mode, SafetyStatus
from core.records import fast_frozen_init
from safety.health import FreezeConfig, HealthState, StreamSpec, stream_checks, stream_frozen
from safety.picture import PictureConfig
from safety.policy import PolicyRule, evaluate, stop_limits
from safety.rules import DEFAULT_RULES, OBJECT_STREAMS
from safety.stage_health import StageWatchConfig

__all__ = ["DEFAULT_RULES", "MonitorState", "SafetyConfig", "Transition", "safety_step"]

PICTURE_PREFIX = "picture."
_NONE_LOST: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    recovery_hold_s: float = field(default=2.0, metadata=rng(0.0, 60.0))
    # The monitor runs at 100 Hz: a gap between its runs beyond this means the loop stalled.
    heartbeat_timeout_s: float = field(default=0.1, metadata=rng(0.001, 10.0))
    picture: PictureConfig = field(default_factory=PictureConfig)
    stages: StageWatchConfig = field(default_factory=StageWatchConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    # An ego sensor is lost once the ego filter's gates refused ``max_refused`` of its last
    # ``refusal_window`` judged messages (max_refused 0: not watched), and stays lost. A wheel stuck at 0
    # while the car moves delivers fresh, finite data, never repeating a noisy value, and the EKF
    # refuses every reading; a GNSS receiver gone noisy has a few fixes pass the gate among many
    # refused (4x its noise: 65% refused). Half the window: the simulated receiver's multipath
    # jumps (1% of fixes, independent) put 4 in 11 fixes on one seed in 25 runs, each rightly
    # refused, and 3 of 10 sent that run into a minimal-risk stop. The stack then quarantines the
    # stream (judged, never applied) for the rest of the run (safety/ego_streams.py says why).
    max_refused: int = field(default=5, metadata=rng(0, 1_000_000))
    refusal_window: int = field(default=10, metadata=rng(1, 1_000_000))
    # An ego sensor is also lost once the NIS of its last ``consistency_window`` messages that passed
    # the gates sums past the chi-square quantile ``consistency_probability`` (0: not watched;
    # safety/ego_streams.py). 20 messages: 0.2 s of IMU or wheel data, 2 s of GNSS fixes. 1 - 1e-8,
    # not 1 - 1e-6: at 1e-6 a fault-free 60 s run brought a GNSS sum to 0.886 of the limit (DESIGN.md).
    consistency_window: int = field(default=20, metadata=rng(0, 1000))  # the sum is rebuilt per message
    consistency_probability: float = field(default=1.0 - 1e-8, metadata=rng(0.5, 1.0 - 1e-12))
    # ... of a sensor this many times noisier than the filter assumes. Real receivers misreport their
    # sigma by 20-30%: a GNSS at 1.3x its reported noise (NIS 1.69 per dof) failed the plain test
    # within 10 min of fixes in 193 of 400 simulated drives (chi-square NIS, truncated at the gate),
    # and in 0 of 400 with this factor, as did one at 1.5x. GNSS at 2.5x and more are then left to
    # the refusal rule (a third of their fixes are refused); IMU and wheel noise at 50x and 10x are
    # still found in 0.25 s and 0.9 s (safety/ego_streams.py).
    consistency_noise_factor: float = field(default=1.25, metadata=rng(1.0, 100.0))

    def __post_init__(self) -> None:
        # A window of fewer messages can never hold that many refusals: the rule would never fire.
        if self.max_refused > self.refusal_window:
            raise ValueError(f"max_refused ({self.max_refused}) must be <= refusal_window ({self.refusal_window})")


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Transition:
    t_ns: int
    mode: Mode
    reason: str


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class MonitorState:
    mode: Mode = Mode.NOMINAL
    reason: str = ""
    lower_demand_since_ns: int = -1  # when the demand first fell below the current mode; -1: it did not
    transitions: tuple[Transition, ...] = ()
    last_step_ns: int = -1  # the previous run of the monitor (the loop's heartbeat); -1: none yet
    picture_flags: frozenset[str] = frozenset()  # picture.* flags of the last fresh object picture
    # The most severe demand since lower_demand_since_ns, and its reason: recovery steps down to it,
    # never past a mode that was demanded during the hold.
    hold_mode: Mode = Mode.NOMINAL
    hold_reason: str = ""


def monitor_flags(state: MonitorState, alive: dict[str, bool], flags: frozenset[str], rate_low: bool,
                  bad_data: bool, t_ns: int, cfg: SafetyConfig) -> tuple[frozenset[str], frozenset[str]]:
    """The flags the policy sees (the stack's, the monitor's own, the held picture) and the
    picture flags to hold from here on. ``rate_low``, ``bad_data``: of some stream still alive."""
    # Plain loops and early exits rather than generator expressions: this runs at 100 Hz, nearly
    # always on no flags or on the picture's alone, with every stream alive and healthy.
    last_ns = state.last_step_ns
    heartbeat_late = last_ns >= 0 and not 0 < t_ns - last_ns <= s_to_ns(cfg.heartbeat_timeout_s)
    fresh = False
    for name in OBJECT_STREAMS:
        if alive.get(name, False):
            fresh = True
            break
    if fresh:
        if not flags:
            picture = flags
        else:
            # Nearly always the stack's flags are the picture's alone: then they are the picture.
            for f in flags:
                if not f.startswith(PICTURE_PREFIX):
                    picture = frozenset(f for f in flags if f.startswith(PICTURE_PREFIX))
                    break
            else:
                picture = flags
    else:
        picture = state.picture_flags
    if not (rate_low or bad_data or heartbeat_late):
        if not flags:
            return picture, picture
        if picture is flags:
            return flags, picture  # the stack's flags are all picture flags, and fresh: seen as they are
    out = {f for f in flags if not f.startswith(PICTURE_PREFIX)} if flags else set()
    if rate_low:
        out.add("stream.rate_low")
    if bad_data:
        out.add("stream.bad_data")
    if heartbeat_late:
        out.add("loop.heartbeat_late")  # a stall, a repeated instant or time going backwards
    return frozenset(out | picture), picture


def safety_step(state: MonitorState, health: HealthState, streams: tuple[StreamSpec, ...],
                flags: frozenset[str], rules: tuple[PolicyRule, ...], t_ns: int,
                cfg: SafetyConfig, refused: frozenset[str] = frozenset(),
                inconsistent: frozenset[str] = frozenset()) -> tuple[MonitorState, SafetyStatus]:
    """``refused``: streams whose data fusion's ego filter refused ``cfg.max_refused`` times within
    their last ``cfg.refusal_window`` judged messages; ``inconsistent``: streams whose innovations
    failed the NIS window test (both judged from fusion's verdicts, safety/ego_streams.py): as
    good as lost."""
    alive = {}
    # Rate and data quality of the streams alive: a lost stream is reported as lost. Folded in as
    # the streams are checked, unless the ego filter's verdicts may take some of them out after.
    judged = bool(refused or inconsistent)
    quality = [] if judged else None  # (name, rate ok, bad data) of each stream alive so far
    any_lost = rate_low = bad_data = False
    for s in streams:
        name = s.name
        is_alive, rate_ok, bad = stream_checks(health, s, t_ns)
        if not is_alive:
            alive[name] = False
            any_lost = True
        elif s.max_repeats and stream_frozen(health, s):
            alive[name] = False  # fresh messages, stale data: as good as lost
            any_lost = True
            flags = flags | {f"{name}.frozen"}
        elif flags and f"perception.{name}.missed_3" in flags:
            # Its detector missed 3 runs in a row (hung or overrunning): fresh input, no detections.
            alive[name] = False
            any_lost = True
            flags = flags | {f"{name}.detector_missed"}
        else:
            alive[name] = True
            if judged:
                quality.append((name, rate_ok, bad))
            else:
                if not rate_ok:
                    rate_low = True
                if bad:
                    bad_data = True
    if judged:
        for judged_streams, cause in ((refused, "refused"), (inconsistent, "inconsistent")):
            for name in judged_streams:
                if alive.get(name):
                    alive[name] = False  # fresh, finite data that contradict the other ego sensors
                    any_lost = True
                    flags = flags | {f"{name}.{cause}"}
        for name, rate_ok, bad in quality:
            if alive[name]:
                rate_low = rate_low or not rate_ok
                bad_data = bad_data or bad
    lost = frozenset(name for name, ok in alive.items() if not ok) if any_lost else _NONE_LOST
    seen, picture = monitor_flags(state, alive, flags, rate_low, bad_data, t_ns, cfg)
    demanded, reason = evaluate(rules, lost, seen)
    mode, why, since, transitions = state.mode, state.reason, state.lower_demand_since_ns, state.transitions
    hold_mode, hold_reason = state.hold_mode, state.hold_reason
    if demanded > mode:
        mode, why, since = demanded, reason, -1
        transitions += (Transition(t_ns, demanded, reason),)
    elif demanded < mode:
        if since < 0 or demanded >= hold_mode:
            hold_mode, hold_reason = demanded, reason
        since = since if since >= 0 else t_ns
        if t_ns - since >= s_to_ns(cfg.recovery_hold_s):
            # Step down only to the most severe mode demanded during the hold (a MINIMAL_RISK demand
            # inside an EMERGENCY_STOP's hold is no healthy picture); if the demand now is lower
            # still, the rest of the way down needs a hold of its own.
            why = hold_reason or f"recovered: healthy for {cfg.recovery_hold_s:g} s"
            mode = hold_mode
            since = t_ns if demanded < mode else -1
            hold_mode, hold_reason = demanded, reason
            transitions += (Transition(t_ns, mode, why),)
    else:
        since = -1
    # The heartbeat is remembered as the latest time seen, so one backwards step cannot rewind it.
    last_ns = state.last_step_ns
    new = MonitorState(mode, why, since, transitions, last_ns if last_ns > t_ns else t_ns, picture, hold_mode,
                       hold_reason)  # max(t_ns, last_ns)
    return new, SafetyStatus(t_ns, mode, why, stop_limits(mode, rules, lost, seen), alive)
