"""Runs keep the objects alive at their start out of the garbage collector's passes
(runtime/heap.py): a full collection in a stage paused it for up to 90 ms."""
from __future__ import annotations

import gc

from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.heap import long_lived_frozen
from sim.scenario import load_scenario


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_objects_alive_at_the_start_are_frozen_and_new_cycles_still_collected():
    assert gc.get_freeze_count() == 0
    old = _Node()
    with long_lived_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert not any(o is old for o in gc.get_objects())  # frozen objects are not scanned
        _Node()  # unreachable at once: a cycle made during the run
        assert gc.collect() >= 1  # freed although collections skip the frozen heap
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    assert any(o is old for o in gc.get_objects())


def test_a_closed_loop_run_steps_its_stages_with_the_heap_frozen():
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=0.5))
    counts = []
    loop.scheduler.add_listener(lambda t_ns, topic, msg: counts.append(gc.get_freeze_count()))
    loop.run()
    assert counts and min(counts) > 0
    assert gc.get_freeze_count() == 0
