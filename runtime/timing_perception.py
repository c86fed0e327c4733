"""Perception in child processes for realtime runs: one process per perception stage.

A detector's pre- and post-processing (image normalisation, BEV scatter, box decoding, radar
clustering) is numpy work that holds the GIL for milliseconds; on a thread it delays the control
loop even though onnxruntime releases the GIL during inference. Each perception stage's task keeps
running on its own worker thread of the scheduler (so queueing, supersession and completion-time
delivery are unchanged), but the step itself runs in a child process built by the same factory:
the worker thread only waits on a pipe, which releases the GIL. States and messages are pickled.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

from perception.onnx_model import SessionOptions
from runtime.perception_factory import build_perception
from runtime.stages import PerceptionStep
from sim.sensors.config import SensorRigConfig

START_TIMEOUT_S = 180.0


def _serve(conn, sensor: str, mode: str, rig: SensorRigConfig, options: SessionOptions) -> None:
    setup = build_perception(mode, rig, options, detector_timer=time.perf_counter_ns)
    step = next(p.step for p in setup.steps if p.sensor == sensor)
    conn.send("ready")
    while (request := conn.recv()) is not None:
        state, message, t_ns, ego = request
        try:
            conn.send(("ok", step(state, message, t_ns, ego)))
        except Exception as exc:  # the stack's guard counts it, as it would in-process
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class PerceptionProcesses:
    """Context manager: a child process per sensor; ``steps`` are drop-in ``PerceptionStep``s."""

    def __init__(self, local_steps: tuple[PerceptionStep, ...], mode: str, rig: SensorRigConfig,
                 options: SessionOptions) -> None:
        ctx = mp.get_context("spawn")
        self._local = local_steps
        self._conns: dict[str, Any] = {}
        self._procs = []
        for p in local_steps:
            parent, child = ctx.Pipe()
            self._conns[p.sensor] = parent
            self._procs.append(ctx.Process(target=_serve, args=(child, p.sensor, mode, rig, options),
                                           name=f"rtdrive-perception-{p.sensor}", daemon=True))

    def __enter__(self) -> "PerceptionProcesses":
        for proc in self._procs:
            proc.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        for sensor, conn in self._conns.items():
            if not conn.poll(max(deadline - time.monotonic(), 0.0)) or conn.recv() != "ready":
                self.close()
                raise RuntimeError(f"the perception process for {sensor} did not start")
        return self

    def steps(self) -> dict[str, PerceptionStep]:
        """sensor -> a step with the local init and health verdict, run remotely."""
        return {p.sensor: PerceptionStep(p.sensor, p.init, self._remote(self._conns[p.sensor]), p.output_healthy)
                for p in self._local}

    @staticmethod
    def _remote(conn):
        def step(state, message, t_ns: int, ego):
            conn.send((state, message, t_ns, ego))
            status, value = conn.recv()
            if status != "ok":
                raise RuntimeError(value)
            return value
        return step

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass  # the child has already exited: nothing to tell it, join below reaps it
        for proc in self._procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)

    def __exit__(self, *exc) -> None:
        self.close()
