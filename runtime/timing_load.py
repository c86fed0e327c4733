"""Background CPU load for the timing harness: N busy processes, always stopped afterwards.

Each process spins until told to stop, and also stops by itself when its parent is gone or its own
deadline passes, so an interrupted harness (Ctrl-C, a kill) never leaves busy processes behind.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

MAX_LOAD_PROCESSES = 4 * (os.cpu_count() or 1)  # a bound: the harness measures load, it does not fork-bomb


def _spin(stop, parent_pid: int, deadline_s: float) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(20_000):  # pure-Python work: holds a core
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        if os.getppid() != parent_pid or time.monotonic() > deadline_s:
            return


class BusyLoad:
    """Context manager: ``with BusyLoad(n, max_s):`` runs n spinning processes for at most max_s."""

    def __init__(self, n: int, max_s: float) -> None:
        if not 0 <= n <= MAX_LOAD_PROCESSES:
            raise ValueError(f"--load {n}: allowed 0..{MAX_LOAD_PROCESSES} busy processes on this machine")
        if not max_s > 0:
            raise ValueError(f"load duration {max_s} s must be positive")
        self.n, self.max_s = n, max_s
        self._ctx = mp.get_context("spawn")  # no copy of the stack's threads or model sessions
        self._stop = None
        self.procs: list = []

    def __enter__(self) -> "BusyLoad":
        if self.n == 0:
            return self
        self._stop = self._ctx.Event()
        deadline_s = time.monotonic() + self.max_s
        try:
            for i in range(self.n):
                p = self._ctx.Process(target=_spin, args=(self._stop, os.getpid(), deadline_s),
                                      name=f"rtdrive-load-{i}", daemon=True)
                p.start()
                self.procs.append(p)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        for p in self.procs:
            p.join(timeout=2.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2.0)
        self.procs = []

    def __exit__(self, *exc) -> None:
        self.stop()

    def alive(self) -> int:
        return sum(p.is_alive() for p in self.procs)
