"""Ctrl-C while the recorder is inside the MCAP writer leaves a log that reads (CRCs and all).

The interrupt is made to land exactly where it tore the file before: in the writer, after bytes went
to the file and before the writer counted them into the data section's CRC. Closing that writer
wrote a file whose CRC check failed (seen in 2 of 15 interrupted `sim --record` runs)."""
from __future__ import annotations

import signal

import numpy as np
import pytest

import runtime.logs.recorder as recorder_module
from core.messages import GnssFix, WheelSpeed
from runtime.logs import Recorder, read, run_metadata


class _InterruptingFile:
    """A real file whose ``interrupt_at``-th write() delivers SIGINT right after writing its bytes."""

    def __init__(self, path, interrupt_at: int):
        self._file = open(path, "wb")  # noqa: SIM115 (closed through close(), as the recorder does)
        self._writes = 0
        self._interrupt_at = interrupt_at

    def write(self, data) -> int:
        written = self._file.write(data)
        self._writes += 1
        if self._writes == self._interrupt_at:
            signal.raise_signal(signal.SIGINT)  # its handler runs before raise_signal returns
        return written

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler, as in an interactive run (a job started in the background of a
    non-interactive shell has SIGINT ignored, and then the recorder leaves it alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("interrupt_at", [4, 6, 9])
def test_interrupt_inside_the_writer_leaves_a_readable_log(tmp_path, monkeypatch, python_sigint_handler,
                                                            interrupt_at):
    path = tmp_path / "interrupted.mcap"
    monkeypatch.setattr(recorder_module, "open", lambda p, mode: _InterruptingFile(p, interrupt_at), raising=False)
    sent = [WheelSpeed(i, float(i)) if i % 2 else GnssFix(i, np.array([float(i), 1.0]), 0.5) for i in range(1, 40)]
    written = 0
    with pytest.raises(KeyboardInterrupt):
        # chunk_size=1: every message is a chunk of its own, so most writes are inside a chunk flush.
        with Recorder(str(path), run_metadata("unit", 0, ""), chunk_size=1) as rec:
            for msg in sent:
                rec.write("/sensors/wheel_speed" if isinstance(msg, WheelSpeed) else "/sensors/gnss", msg)
                written += 1
    # The write the interrupt came in finished first; the interrupt was raised right after it.
    contents = read(path, order="file")
    assert contents.damage is None
    assert [m.msg.t_ns for m in contents.messages] == [m.t_ns for m in sent[:written + 1]]
    # Closed: SIGINT is Python's own again.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
