"""The one scheduler behind simulation, replay and the timing harness.

Events run in the deterministic order (time, priority, sequence). Each task has a rate (or is
triggered by a topic), a priority and a compute budget; every run is timed with the injected timer and
recorded as a ``StageTiming``. What changes by mode is only when outputs become visible:

- ``ideal``: outputs are delivered at the run's start time; compute time is recorded, nothing more.
  The deadline watchdog sees modelled compute time (half the budget, times an injected slow=K),
  so an ideal run's behaviour never depends on the machine it runs on.
- ``latency``: outputs are delivered at start + measured compute time (latency in the loop), and a
  task cannot start again before its previous run has finished (one executor per task).
- ``realtime``: the clock is the wall clock; the scheduler sleeps until each event; a late event runs
  late and is counted (its queueing delay shows), never replayed in a catch-up burst for missed periods.
  Tasks named with ``run_off_loop`` run on a worker thread each (inference releases the GIL), so a
  15 ms network does not hold up the 100 Hz control loop; their outputs come back to the queue at
  their completion time. A stage task that falls due while its worker is busy keeps only its newest
  input (older ones are superseded and counted); the simulator's own tasks keep every step.
"""
from __future__ import annotations

import heapq
import queue
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from core.clock import Clock, Timer
from core.messages import StageTiming

MODES = ("ideal", "latency", "realtime")
Output = tuple[str, Any]  # (topic, message)
# In ideal mode every run is modelled as taking this fraction of its budget (see _finish).
NOMINAL_UTILISATION = 0.5
# Deliveries sort before task runs at the same instant, so a task sees every input stamped <= its time.
_DELIVERY_PRIORITY = -1_000_000


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str  # stage name: perception.<sensor>, fusion, planning, control, safety (or sim.*)
    priority: int  # lower runs first at equal time
    budget_ns: int
    period_ns: int = 0  # 0: run only when triggered by a topic
    phase_ns: int = 0  # first periodic run at phase_ns
    timed: bool = True  # False for the simulator's own tasks: not a stage, no timing record


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What a run may return instead of a plain list of outputs, when its timing is modelled
    (stage-fault injection): a slow stage's compute time is scaled, a hung one never finishes."""

    outputs: tuple[Output, ...] = ()
    compute_scale: float = 1.0  # recorded compute time = measured x scale
    hung: bool = False  # no output; the run occupies its task until the next period, a miss


@dataclass(slots=True)
class _Task:
    spec: TaskSpec
    run: Callable[[int, tuple[str, Any] | None], Iterable[Output]]
    busy_until_ns: int = 0
    missed_in_a_row: int = 0
    worker: "_Worker | None" = None  # realtime only: the thread this task runs on, off the loop
    in_flight: bool = False
    lead_ns: int = 0  # realtime, off-loop simulator tasks: started this long before their nominal time
    pending: deque = field(default_factory=deque)  # (trigger, ready_ns) due while in flight


class _Worker:
    """One thread per off-loop task: runs its jobs in order and reports each back to the loop."""

    def __init__(self, sched: "Scheduler", task: _Task) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._sched, self._task = sched, task
        self.thread = threading.Thread(target=self._serve, name=f"rtdrive-{task.spec.name}", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        sched, spec = self._sched, self._task.spec
        while (job := self.jobs.get()) is not None:
            trigger, ready_ns = job
            start_ns = sched.clock.now_ns()
            try:
                t0 = sched.timer()
                # Stages get their start time; the simulator steps on its nominal grid.
                result = self._task.run(start_ns if spec.timed else ready_ns, trigger)
                duration_ns = sched.timer() - t0
            except BaseException as exc:  # the loop re-raises it: a worker never dies silently
                sched._inbox.put(("error", exc))
                return
            sched._inbox.put(("done", spec.name, start_ns, ready_ns, duration_ns, result, sched.clock.now_ns()))


class Scheduler:
    def __init__(self, clock: Clock, timer: Timer, mode: str = "ideal") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown scheduler mode {mode!r}; choose one of {', '.join(MODES)}")
        self.clock, self.timer, self.mode = clock, timer, mode
        # (t_ns, priority, sequence, kind, task name or topic, trigger or message, ready_ns)
        self._queue: list[tuple[int, int, int, str, str, Any, int]] = []
        self._seq = 0
        self._tasks: dict[str, _Task] = {}
        self._subscribers: dict[str, list[str]] = {}
        self._listeners: list[Callable[[int, str, Any], None]] = []
        self.timings: list[StageTiming] = []
        self.now_ns = 0
        self.superseded: dict[str, int] = {}  # off-loop stage inputs replaced by a newer one, per task
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # worker results and posts from workers
        self._loop_thread = threading.get_ident()

    # -- wiring ----------------------------------------------------------------------------------
    def add_task(self, spec: TaskSpec, run: Callable[[int, tuple[str, Any] | None], Iterable[Output]],
                 triggers: Iterable[str] = ()) -> None:
        """Register a task. ``run(t_ns, trigger)`` gets the triggering (topic, message) or None for a
        periodic run, and returns the (topic, message) pairs it publishes."""
        if spec.name in self._tasks:
            raise ValueError(f"task {spec.name!r} registered twice")
        self._tasks[spec.name] = _Task(spec, run)
        for topic in triggers:
            self._subscribers.setdefault(topic, []).append(spec.name)
        if spec.period_ns > 0:
            self._push(spec.phase_ns, spec.priority, "run", spec.name, None, spec.phase_ns)

    def add_listener(self, listener: Callable[[int, str, Any], None]) -> None:
        """Called for every delivered message (t_ns, topic, msg): the bus, recorders, metrics."""
        self._listeners.append(listener)

    def post(self, t_ns: int, topic: str, message: Any) -> None:
        """An input that becomes available at t_ns (a sensor arrival, a replayed message)."""
        if threading.get_ident() != self._loop_thread:
            self._inbox.put(("post", t_ns, topic, message))  # from a worker: the loop owns the queue
            return
        # _push, inline: the simulator posts every sensor message through here.
        heapq.heappush(self._queue, (int(t_ns), _DELIVERY_PRIORITY, self._seq, "deliver", topic, message, t_ns))
        self._seq += 1

    def run_off_loop(self, names: Iterable[str], sim_lead_ns: int = 0) -> None:
        """Realtime only: run these tasks on worker threads of their own (see the module notes).
        ``sim_lead_ns``: a simulator (untimed) task among them starts its step for nominal time t at
        t - lead, so what it posts for t (sensor data) exists by t, as a real sensor's would."""
        if self.mode != "realtime":
            raise ValueError("only realtime runs take tasks off the loop; ideal and latency stay deterministic")
        for name in names:
            task = self._tasks[name]
            if task.worker is None:
                task.worker = _Worker(self, task)
            if not task.spec.timed:
                task.lead_ns = int(sim_lead_ns)

    def set_run(self, name: str, run: Callable[[int, tuple[str, Any] | None], Iterable[Output]]) -> None:
        """Swap a task's run function, keeping its spec and schedule (the timing harness moves the
        simulator into a process of its own this way)."""
        self._tasks[name].run = run

    def set_priority(self, name: str, priority: int) -> None:
        """Change a task's priority for its runs from now on (queued runs included)."""
        task = self._tasks[name]
        task.spec = replace(task.spec, priority=priority)
        # In place: run_until holds the queue in a local.
        self._queue[:] = [(t, priority if kind == "run" and task_name == name else pr, seq, kind, task_name, trigger, ready)
                          for t, pr, seq, kind, task_name, trigger, ready in self._queue]
        heapq.heapify(self._queue)

    def close(self) -> None:
        """Stop the worker threads; a run in progress finishes, queued jobs are dropped."""
        for task in self._tasks.values():
            if task.worker is not None:
                while not task.worker.jobs.empty():
                    try:
                        task.worker.jobs.get_nowait()
                    except queue.Empty:
                        break
                task.worker.jobs.put(None)
        for task in self._tasks.values():
            if task.worker is not None:
                task.worker.thread.join(timeout=5.0)
                task.worker = None

    # -- running ---------------------------------------------------------------------------------
    def _push(self, t_ns: int, priority: int, kind: str, name_or_topic: str, trigger_or_message: Any,
              ready_ns: int) -> None:
        # One flat tuple per event: the heap orders by (time, priority, sequence), and the sequence
        # is unique, so the payload fields after it are never compared.
        heapq.heappush(self._queue, (int(t_ns), priority, self._seq, kind, name_or_topic, trigger_or_message, ready_ns))
        self._seq += 1

    def next_event_ns(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def run_until(self, end_ns: int) -> None:
        """Process every event with time <= end_ns."""
        self._loop_thread = threading.get_ident()
        if any(t.worker is not None for t in self._tasks.values()):
            self._run_until_off_loop(end_ns)
        elif self.mode == "ideal":
            self._run_until_ideal(end_ns)
        else:
            self._run_until_on_loop(end_ns)

    def _run_until_on_loop(self, end_ns: int) -> None:
        """Every task on the loop thread (latency mode, or realtime with nothing off the loop)."""
        events = self._queue
        while events and events[0][0] <= end_ns:
            self._process_next()

    def _process_next(self) -> None:
        """Take the next event off the queue, move the clock to it and deliver or run it."""
        t_ns, _, _, kind, name_or_topic, trigger_or_message, ready_ns = heapq.heappop(self._queue)
        self.clock.wait_until(t_ns)
        self.now_ns = t_ns
        if kind == "deliver":
            self._deliver(t_ns, name_or_topic, trigger_or_message)
        else:
            self._run_task(self._tasks[name_or_topic], t_ns, trigger_or_message, ready_ns, kind == "run")

    def _run_until_ideal(self, end_ns: int) -> None:
        """Ideal mode, the closed-loop simulation's: the same events in the same order as
        ``_run_task`` and ``_finish`` would process them, with what ideal mode never needs (the
        realtime clock reads, the latency executor, the off-loop workers) left out. A closed-loop
        run is ~14,000 events of a few microseconds of scheduler overhead each, so the branches,
        calls and attribute reads per event count: deliveries are ``_deliver`` inline."""
        events, tasks, wait_until, pop, push = self._queue, self._tasks, self.clock.wait_until, heapq.heappop, heapq.heappush
        timer, record_timing = self.timer, self.timings.append
        listeners, subscribers = self._listeners, self._subscribers
        nominal_miss = NOMINAL_UTILISATION > 1.0  # the watchdog's modelled verdict (see _finish)
        clock_ns = None  # the instant the clock was last moved to: events share instants (~4 per tick)
        while events and events[0][0] <= end_ns:
            t_ns, _, _, kind, name_or_topic, trigger, ready_ns = pop(events)
            if t_ns != clock_ns:  # a clock is monotonic: waiting again for the same instant is a no-op
                wait_until(t_ns)
                clock_ns = self.now_ns = t_ns
            if kind == "deliver":
                for listener in listeners:
                    listener(t_ns, name_or_topic, trigger)
                if subscribers.get(name_or_topic):
                    self._trigger_subscribers(t_ns, name_or_topic, trigger)
                continue
            task = tasks[name_or_topic]
            spec = task.spec
            if kind != "run":
                self._run_task(task, t_ns, trigger, ready_ns, False)
                continue
            if trigger is None and spec.period_ns > 0:
                # The next run on the nominal grid, queued before this run's outputs (as _run_task).
                next_ns = ready_ns + spec.period_ns
                push(events, (next_ns, spec.priority, self._seq, "run", name_or_topic, None, next_ns))
                self._seq += 1
            t0 = timer()
            result = task.run(t_ns, trigger)
            duration_ns = timer() - t0
            if type(result) is not list:
                self._finish(task, t_ns, ready_ns, duration_ns, result, None, t_ns)
                continue
            if spec.timed:
                # The watchdog sees modelled compute time; an injected fault comes as a TaskOutcome
                # (handled by _finish above).
                task.missed_in_a_row = task.missed_in_a_row + 1 if nominal_miss else 0
                record_timing(StageTiming(name_or_topic, t_ns, ready_ns, duration_ns, spec.budget_ns,
                                          duration_ns > spec.budget_ns))
            for topic, message in result:  # visible at once, at the run's own instant: _deliver, inline
                for listener in listeners:
                    listener(t_ns, topic, message)
                if subscribers.get(topic):
                    self._trigger_subscribers(t_ns, topic, message)

    def _run_until_off_loop(self, end_ns: int) -> None:
        """Realtime with tasks on worker threads: their reports come through the inbox."""
        events = self._queue
        while True:
            self._drain_inbox()
            if not events or events[0][0] > end_ns:
                break
            if self._wait_inbox(events[0][0]):
                continue  # a worker reported before the next event was due: its outputs may come first
            self._process_next()

    def _deliver(self, t_ns: int, topic: str, message: Any) -> None:
        for listener in self._listeners:
            listener(t_ns, topic, message)
        if self._subscribers.get(topic):
            self._trigger_subscribers(t_ns, topic, message)

    def _trigger_subscribers(self, t_ns: int, topic: str, message: Any) -> None:
        """Queue a run of every task triggered by ``topic`` (delivered at ``t_ns``)."""
        for name in self._subscribers[topic]:
            self._push(t_ns, self._tasks[name].spec.priority, "run", name, (topic, message), t_ns)

    def _wait_inbox(self, t_ns: int) -> bool:
        """Sleep until t_ns unless a worker reports first (then handle it and return True)."""
        remaining_ns = t_ns - self.clock.now_ns()
        if remaining_ns <= 0:
            return False
        try:
            item = self._inbox.get(timeout=remaining_ns / 1e9)
        except queue.Empty:
            return False
        self._handle(item)
        return True

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._handle(item)

    def _handle(self, item: tuple) -> None:
        if item[0] == "error":
            raise item[1]
        if item[0] == "post":
            _, t_ns, topic, message = item
            self._push(t_ns, _DELIVERY_PRIORITY, "deliver", topic, message, t_ns)
            return
        _, name, start_ns, ready_ns, duration_ns, result, end_ns = item
        task = self._tasks[name]
        task.in_flight = False
        self._finish(task, start_ns, ready_ns, duration_ns, result, end_ns)
        if task.pending:
            task.in_flight = True
            task.worker.jobs.put(task.pending.popleft())

    def _submit(self, task: _Task, trigger, ready_ns: int) -> None:
        if not task.in_flight:
            task.in_flight = True
            task.worker.jobs.put((trigger, ready_ns))
            return
        if task.spec.timed and task.pending:
            # A stage works on the newest input only: a backlog would be a catch-up burst later.
            task.pending.clear()
            self.superseded[task.spec.name] = self.superseded.get(task.spec.name, 0) + 1
        task.pending.append((trigger, ready_ns))

    def _run_task(self, task: _Task, t_ns: int, trigger, ready_ns: int, first_dispatch: bool = True) -> None:
        spec, mode = task.spec, self.mode
        period_ns = spec.period_ns
        # A run re-queued behind its busy executor ("rerun") must not plan the next period again:
        # that would start a second periodic chain on every re-queue.
        if period_ns > 0 and trigger is None and first_dispatch:
            # The next periodic run is planned from the nominal grid, never from the actual start:
            # a late run does not shift the rate, and missed periods are skipped, not bunched.
            next_ns = ready_ns + period_ns
            if mode == "realtime":
                now = self.clock.now_ns()
                if next_ns <= now:
                    skipped = (now - next_ns) // period_ns + 1
                    next_ns += skipped * period_ns
            self._push(next_ns - task.lead_ns, spec.priority, "run", spec.name, None, next_ns)
        if mode == "latency" and task.busy_until_ns > t_ns:
            # One executor per task: wait for the previous run to finish (queueing delay).
            self._push(task.busy_until_ns, spec.priority, "rerun", spec.name, trigger, ready_ns)
            return
        if task.worker is not None:
            self._submit(task, trigger, ready_ns)
            return
        start_ns = t_ns
        if mode == "realtime":
            # Stages get their actual start; the simulator (untimed) steps on its nominal grid.
            start_ns = self.clock.now_ns() if spec.timed else ready_ns
        timer = self.timer
        t0 = timer()
        result = task.run(start_ns, trigger)
        duration_ns = timer() - t0
        self._finish(task, start_ns, ready_ns, duration_ns, result,
                     self.clock.now_ns() if mode == "realtime" else None, t_ns)

    def _finish(self, task: _Task, start_ns: int, ready_ns: int, duration_ns: int, result,
                realtime_end_ns: int | None, t_ns: int | None = None) -> None:
        """Account a finished run and publish its outputs (on the loop thread, in every mode)."""
        spec, mode = task.spec, self.mode
        scale, hung = 1.0, False
        if type(result) is list:
            outputs = result  # a run's own fresh list (the common case): iterated once, below
        elif isinstance(result, TaskOutcome):
            scale, hung = result.compute_scale, result.hung
            duration_ns = int(duration_ns * scale)
            if hung:
                duration_ns = max(duration_ns, spec.budget_ns + max(spec.period_ns, spec.budget_ns))
            outputs = [] if hung else list(result.outputs)
        else:
            outputs = list(result)
        if spec.timed:
            missed = duration_ns > spec.budget_ns
            if mode == "ideal":
                # Behaviour must not depend on the machine: the watchdog sees modelled compute time,
                # NOMINAL_UTILISATION of the budget per run (scaled by an injected slow=K), and only
                # the report shows what was measured.
                behavioural_miss = hung or NOMINAL_UTILISATION * scale > 1.0
            else:
                behavioural_miss = missed
            task.missed_in_a_row = task.missed_in_a_row + 1 if behavioural_miss else 0
            self.timings.append(StageTiming(spec.name, start_ns, ready_ns, duration_ns, spec.budget_ns, missed))
        if not outputs:
            if mode == "latency" and spec.timed:
                task.busy_until_ns = start_ns + duration_ns
            return
        if mode == "latency":
            available_ns = start_ns + duration_ns
            if spec.timed:  # the simulator's own compute is not the stack's: it never delays sim time
                task.busy_until_ns = available_ns
        elif mode == "realtime":
            available_ns = realtime_end_ns
        else:
            available_ns = start_ns
        for topic, message in outputs:
            if available_ns == start_ns == t_ns:
                self._deliver(t_ns, topic, message)  # ideal mode: visible at once, same instant
            else:
                self.post(available_ns, topic, message)

    def has_task(self, name: str) -> bool:
        return name in self._tasks

    def task_names(self) -> list[str]:
        return [n for n, t in self._tasks.items() if t.spec.timed]

    def missed_in_a_row(self, name: str) -> int:
        return self._tasks[name].missed_in_a_row

    def missing(self, names: Iterable[str], in_a_row: int) -> list[str]:
        """Those of ``names`` whose last ``in_a_row`` runs (or more) all missed: ``missed_in_a_row``
        of several tasks in one call (the safety monitor asks at 100 Hz)."""
        tasks, found = self._tasks, []
        for name in names:  # a loop, not a comprehension: no function call per ask (Python 3.11)
            if tasks[name].missed_in_a_row >= in_a_row:
                found.append(name)
        return found
