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



def test_an_interrupt_in_a_runs_closing_flush_keeps_what_its_end_record_vouches_for(tmp_path, monkeypatch,
                                                                                     python_sigint_handler):
    """A run stopped by Ctrl-C flushes its last stage timings and sync decisions at close, one write
    each, then writes the end record. A second Ctrl-C at the first of those writes used to end the
    flush there (those records were of the interrupted instant, which end_ns excludes, so replay
    was not misled; the log was short of them). Now the flush and the close are one held section
    and the log holds every record the stack produced."""
    from core.clock import s_to_ns
    from runtime.closed_loop import ClosedLoop, RunOptions
    from runtime.logs.topics import SYNC_DECISIONS
    from runtime.record import EXTRA_TYPES, RunRecorder
    from sim.scenario import load_scenario

    path = tmp_path / "closing.mcap"
    loop = ClosedLoop(load_scenario("cut_in"), RunOptions(seed=3, duration_s=1.0, perception="oracle"))

    def first_ctrl_c(t_ns: int, topic: str, _msg) -> None:
        # Registered before the recorder's listener: the instant's timings are not flushed yet.
        if topic in ("/fusion/tracks", "/fusion/ego") and t_ns >= s_to_ns(0.5):
            raise KeyboardInterrupt

    loop.scheduler.add_listener(first_ctrl_c)
    real_write = Recorder.write
    second = []

    def write_then_ctrl_c(self, topic, msg, *args, **kwargs):
        real_write(self, topic, msg, *args, **kwargs)
        if closing and not second:
            second.append(topic)
            signal.raise_signal(signal.SIGINT)  # Python's handler runs before raise_signal returns

    monkeypatch.setattr(Recorder, "write", write_then_ctrl_c)
    closing = False
    with pytest.raises(KeyboardInterrupt):
        with RunRecorder(loop, path) as run:
            try:
                loop.run()
            except KeyboardInterrupt:
                pending = (len(loop.scheduler.timings) - run._timings_done
                           + len(loop.stack.sync_records) - run._sync_done)
                closing = True
                raise
    assert pending >= 2, "the stop must leave records to flush for this test to mean anything"
    assert second, "the closing flush wrote nothing"
    contents = read(path, order="file", extra_types=EXTRA_TYPES)
    assert contents.damage is None
    topics = [m.topic for m in contents.messages]
    assert sum(t.startswith("/timing/") for t in topics) == len(loop.scheduler.timings)
    assert topics.count(SYNC_DECISIONS) == len(loop.stack.sync_records)
    assert run.complete is False
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_failing_file_close_still_gives_sigint_back_and_raises_the_held_interrupt(tmp_path, monkeypatch,
                                                                                    python_sigint_handler):
    """A full disk can fail the file's last flush inside close(); the guard used to stay installed
    (swallowing every later Ctrl-C of the process) and the interrupt held during the close was lost."""

    class _FullDisk(_InterruptingFile):
        def close(self) -> None:
            super().close()
            raise OSError(28, "No space left on device")

    path = tmp_path / "full.mcap"
    monkeypatch.setattr(recorder_module, "open", lambda p, mode: _FullDisk(p, interrupt_at=10**9), raising=False)
    rec = Recorder(str(path), run_metadata("unit", 0, ""))
    rec.write("/sensors/wheel_speed", WheelSpeed(1, 1.0))
    with pytest.raises(KeyboardInterrupt) as raised:
        with rec.interrupts_held():
            signal.raise_signal(signal.SIGINT)  # held: the block is still writing
            rec.close()
    assert isinstance(raised.value.__context__, OSError)  # the disk's error is kept, not lost
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)  # a later Ctrl-C is Python's own again
