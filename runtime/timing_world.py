"""The simulated world in a process of its own for realtime runs.

Rendering the camera image and ray-casting the lidar is numpy work that holds the GIL for
milliseconds at a time: on a thread of the stack's process it delays the control loop. Here the
world steps in a child process; the stack's process sends it each tick's time and the latest
command and gets back the sensor messages to post (the pipe wait releases the GIL). The child is
an ordinary ``ClosedLoop`` built from the same scenario and options (so the world, sensors and
metrics are exactly the closed loop's), whose world tick is driven with a capturing poster.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import replace
from typing import Any

from runtime.closed_loop import ClosedLoop, RunOptions, drive_by_wire_report
from runtime.stack_config import StackConfig
from sim.scenario import ScenarioConfig

WARMUP_TICKS = 20  # covers a capture of every sensor (the slowest, lidar, runs at 10 Hz)


class _Capture:
    """Stands in for the scheduler inside the child: collects what the world posts."""

    def __init__(self) -> None:
        self.posted: list[tuple[int, str, Any]] = []

    def post(self, t_ns: int, topic: str, message: Any) -> None:
        self.posted.append((t_ns, topic, message))


def _serve(conn, scenario: ScenarioConfig, opts: RunOptions, stack_cfg: StackConfig) -> None:
    # The child needs the world, not the networks: classical perception builds the same sensors.
    child_opts = replace(opts, mode="ideal", progress=None,
                         perception="classical" if opts.perception == "onnx" else opts.perception)
    # A throwaway twin steps first: the first renders and ray casts pay one-off costs (allocations,
    # lazy imports) that would otherwise make the first real ticks late and the sensors look lost.
    twin = ClosedLoop(scenario, child_opts, stack_cfg)
    twin.scheduler = _Capture()
    for k in range(WARMUP_TICKS):
        twin._world_tick(k * twin._physics_dt_ns, None)
    loop = ClosedLoop(scenario, child_opts, stack_cfg)
    capture = _Capture()
    loop.scheduler = capture  # _world_tick posts through self.scheduler
    conn.send("ready")
    while True:
        request = conn.recv()
        if request is None:
            summary = loop.metrics.summary()
            summary["final_speed_mps"] = round(float(loop.trajectory[-1][3]), 3) if loop.trajectory else 0.0
            summary["drive_by_wire"] = drive_by_wire_report(loop.drive_by_wire, loop.world.vehicle)
            conn.send(summary)
            return
        t_ns, command = request
        if command is not None:
            loop.stack.bus.latest["/control/command"] = command
        loop._world_tick(t_ns, None)
        conn.send(capture.posted)
        capture.posted = []


class WorldProcess:
    """``with WorldProcess(...) as wp: sched.set_run("sim.world", wp.tick_for(sched, bus))``."""

    def __init__(self, scenario: ScenarioConfig, opts: RunOptions, stack_cfg: StackConfig) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, scenario, opts, stack_cfg), name="rtdrive-world",
                                 daemon=True)
        self.metrics: dict | None = None

    def __enter__(self) -> "WorldProcess":
        self._proc.start()
        if not self._conn.poll(120.0) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("the world process did not start within 120 s")
        return self

    def tick_for(self, sched, bus):
        def tick(t_ns: int, _trigger) -> list:
            self._conn.send((t_ns, bus.latest.get("/control/command")))
            for arrival_ns, topic, message in self._conn.recv():
                sched.post(arrival_ns, topic, message)
            return []
        return tick

    def finish(self) -> dict:
        """The world's closed-loop metrics; the process ends."""
        self._conn.send(None)
        self.metrics = self._conn.recv()
        return self.metrics

    def close(self) -> None:
        self._proc.join(timeout=5.0)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5.0)

    def __exit__(self, *exc) -> None:
        self.close()
