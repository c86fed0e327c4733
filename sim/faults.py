"""Fault injection as scenario parameters: ``TARGET:KIND[=VALUE][@START[-END]]`` (seconds).

Sensor faults alter a sensor's stream of arrivals, only for messages captured inside the window
[START, END) (END omitted: to the end of the run; @ omitted: the whole run):
  dropout          no message arrives
  intermittent=P   each message is lost with probability P
  freeze           the payload of the last message before the window is repeated (fresh t_ns)
  delay=S          arrival is S seconds later
  skew=S           t_ns is offset by S (a mis-synchronised clock)
  jump=S           the sensor clock steps by S at START and stays stepped (takes no END)
  noise=K          the sensor's noise is multiplied by K (the sensor asks noise_multiplier)
  nan=P            each payload value becomes NaN/inf with probability P
  corrupt          the payload has the wrong shape
Stage faults parse here and are applied by the stages' runner: exception, slow=K (compute time x K),
hang.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from core.clock import s_to_ns
from sim.sensors.arrival import Arrival
from sim.sensors.config import SENSOR_NAMES
from sim.sensors.payload import corrupt_shape, has_nonfinite, inject_nonfinite, with_payload_of

# kind -> what its value means (None: takes no value), and the value's allowed range.
SENSOR_KINDS: dict[str, tuple[str | None, float, float]] = {
    "dropout": (None, 0, 0), "intermittent": ("P", 0.0, 1.0), "freeze": (None, 0, 0),
    "delay": ("S", 0.0, 60.0), "skew": ("S", -60.0, 60.0), "jump": ("S", -3600.0, 3600.0),
    "noise": ("K", 0.0, 1000.0), "nan": ("P", 0.0, 1.0), "corrupt": (None, 0, 0),
}
STAGE_TARGETS = ("detector", "fusion", "tracker", "planner", "control")
STAGE_KINDS: dict[str, tuple[str | None, float, float]] = {
    "exception": (None, 0, 0), "slow": ("K", 1.0, 1000.0), "hang": (None, 0, 0),
}


class FaultSpecError(ValueError):
    """A fault specification that cannot be applied; the message is one line."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    target: str  # a sensor name or a stage name
    kind: str
    value: float | None
    start_s: float = 0.0
    end_s: float = math.inf

    @property
    def is_stage(self) -> bool:
        return self.target in STAGE_TARGETS

    def active(self, t_ns: int) -> bool:
        return s_to_ns(self.start_s) <= t_ns and (math.isinf(self.end_s) or t_ns < s_to_ns(self.end_s))

    def __str__(self) -> str:
        text = f"{self.target}:{self.kind}" + ("" if self.value is None else f"={self.value:g}")
        window = "" if math.isinf(self.end_s) else f"-{self.end_s:g}"
        return text + (f"@{self.start_s:g}{window}" if self.start_s or window else "")


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"fault '{spec}': {what} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise FaultSpecError(f"fault '{spec}': {what} must be finite")
    return value


def parse_fault(spec: str) -> FaultSpec:
    text = spec.strip()
    target, sep, rest = text.partition(":")
    targets = SENSOR_NAMES + STAGE_TARGETS
    if not sep or target not in targets:
        raise FaultSpecError(f"fault '{spec}': unknown target '{target}'; expected TARGET:KIND[=VALUE][@START[-END]] "
                             f"with TARGET one of {', '.join(targets)}")
    kinds = STAGE_KINDS if target in STAGE_TARGETS else SENSOR_KINDS
    body, at, window = rest.partition("@")
    kind, eq, value_text = body.partition("=")
    if kind not in kinds:
        allowed = ", ".join(k + ("" if v[0] is None else f"={v[0]}") for k, v in kinds.items())
        raise FaultSpecError(f"fault '{spec}': unknown kind '{kind}' for {target}; allowed: {allowed}")
    meaning, lo, hi = kinds[kind]
    value = None
    if meaning is None and eq:
        raise FaultSpecError(f"fault '{spec}': {kind} takes no value")
    if meaning is not None:
        if not eq:
            raise FaultSpecError(f"fault '{spec}': {kind} needs a value, {kind}={meaning}")
        value = _number(value_text, meaning, spec)
        if not lo <= value <= hi:
            raise FaultSpecError(f"fault '{spec}': {kind}={value:g} is out of range; allowed [{lo:g}, {hi:g}]")
    start_s, end_s = 0.0, math.inf
    if at:
        start_text, dash, end_text = _split_window(window)
        start_s = _number(start_text, "START", spec)
        if start_s < 0:
            raise FaultSpecError(f"fault '{spec}': START {start_s:g} is negative; a window starts at 0 s or later")
        if dash:
            if kind == "jump":
                raise FaultSpecError(f"fault '{spec}': jump is a clock step at START and takes no END")
            end_s = _number(end_text, "END", spec)
        if end_s <= start_s:
            raise FaultSpecError(f"fault '{spec}': window needs 0 <= START < END, got {start_s:g}-{end_s:g}")
    return FaultSpec(target, kind, value, start_s, end_s)


def _split_window(window: str) -> tuple[str, str, str]:
    """``START[-END]`` -> (START, "-", END) or (START, "", ""). The separator is the first '-' that
    is neither a leading sign nor an exponent's sign, so that 1e-3 and -3 stay whole numbers (the
    latter to be refused as negative, not misread as an empty START)."""
    for i in range(1, len(window)):
        if window[i] == "-" and window[i - 1] not in "eE":
            return window[:i], "-", window[i + 1:]
    return window, "", ""


def parse_faults(specs) -> tuple[FaultSpec, ...]:
    return tuple(parse_fault(s) for s in specs)


def check_fault_windows(faults: tuple[FaultSpec, ...], duration_s: float) -> None:
    """A fault whose window starts at or after the end of a ``duration_s`` run would never act:
    refused, so that a run does not pass silently without the fault it was asked to survive."""
    for f in faults:
        if f.start_s >= duration_s:
            raise FaultSpecError(f"fault '{f}': starts at {f.start_s:g} s, not before the run ends at "
                                 f"{duration_s:g} s")


def late_fault_notes(specs, duration_s: float) -> list[str]:
    """One line for each fault of ``specs`` (the texts as written, e.g. a scenario file's) whose
    window starts at or after the end of a ``duration_s`` run; empty when every fault starts
    inside it. Unlike check_fault_windows this refuses nothing: a --duration that cuts a scenario
    short may mean to leave out its late faults, but the run must not pass as one that survived
    them. A window that starts inside the run and ends after it is no concern: it lasts to the end."""
    notes = []
    for text in specs:
        f = parse_fault(text)
        # The run processes events up to and including its end (Scheduler.run_until), so a window
        # starting exactly there still acts on that last instant's captures and stage runs.
        if f.start_s > duration_s:
            notes.append(f"fault {text.strip()} starts at {float(f.start_s)} s, after the run ends at "
                         f"{float(duration_s)} s; it is not injected")
        elif f.start_s == duration_s:
            notes.append(f"fault {text.strip()} starts at {float(f.start_s)} s, as the run ends; it acts on "
                         "that last instant only")
    return notes


def noise_multiplier(faults: tuple[FaultSpec, ...], sensor: str, t_ns: int) -> float:
    """Product of the active noise=K faults on ``sensor`` at capture time ``t_ns`` (1 when none)."""
    k = 1.0
    for f in faults:
        if f.target == sensor and f.kind == "noise" and f.active(t_ns):
            k *= float(f.value)
    return k


@dataclass(frozen=True, slots=True)
class StreamCounters:
    messages: int = 0  # delivered
    dropped: int = 0  # lost to dropout / intermittent
    late: int = 0  # delivered later than latency + jitter bound after capture
    nonfinite: int = 0  # delivered with NaN/inf in the payload
    faulted: int = 0  # captures that some fault altered (dropped ones included)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class FaultState:
    """Per-stream memory of apply_faults: counters and the payload a frozen sensor repeats."""

    max_latency_ns: int  # latency + jitter bound of the stream: later arrivals count as late
    counters: StreamCounters = StreamCounters()
    frozen: object = None  # last message captured outside any freeze window


def apply_faults(arrival: Arrival, faults: tuple[FaultSpec, ...], rng: np.random.Generator,
                 state: FaultState) -> tuple[FaultState, list[Arrival]]:
    """Alter one capture's arrival as the faults on its stream that are active at its capture time
    say; returns the new state and the arrivals to deliver (empty when dropped)."""
    t = arrival.capture_ns
    active = [f for f in faults if f.target == arrival.topic and f.active(t)]
    kinds = {f.kind for f in active}
    c = state.counters
    frozen = state.frozen if "freeze" in kinds else arrival.message
    if "dropout" in kinds or any(f.kind == "intermittent" and rng.random() < f.value for f in active):
        c = dataclasses.replace(c, dropped=c.dropped + 1, faulted=c.faulted + 1)
        return dataclasses.replace(state, counters=c, frozen=frozen), []
    msg, arrival_ns = arrival.message, arrival.arrival_ns
    for f in active:
        if f.kind == "freeze" and state.frozen is not None:
            msg = with_payload_of(msg, state.frozen)
        elif f.kind == "nan":
            msg = inject_nonfinite(msg, float(f.value), rng)
        elif f.kind == "corrupt":
            msg = corrupt_shape(msg)
        elif f.kind in ("skew", "jump"):
            msg = dataclasses.replace(msg, t_ns=int(msg.t_ns) + s_to_ns(f.value))
        elif f.kind == "delay":
            arrival_ns += s_to_ns(f.value)
    if frozen is None:  # a freeze window that opened before any capture repeats its first one
        frozen = arrival.message
    out = dataclasses.replace(arrival, arrival_ns=int(arrival_ns), message=msg)
    c = dataclasses.replace(
        c, messages=c.messages + 1, faulted=c.faulted + (1 if active else 0),
        late=c.late + (1 if arrival_ns - t > state.max_latency_ns else 0),
        nonfinite=c.nonfinite + (1 if has_nonfinite(msg) else 0))
    return dataclasses.replace(state, counters=c, frozen=frozen), [out]
