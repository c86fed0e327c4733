"""MCAP recorder: zstd-compressed chunks, CRCs on, one "rtdrive" metadata record at the start and,
when the caller says how the recording ended, one "rtdrive.end" record at close.

Timestamps in the message envelope (the MCAP message record):
- ``log_time`` = the caller's ``log_time_ns``, by default the message's ``t_ns`` (the time the data is
  about). A run log (``runtime.record``) passes the time the stack saw the message instead: a faulted
  sensor clock can stamp data before 0, and MCAP times are unsigned; ``t_ns`` stays in the payload;
- ``publish_time`` = ``arrival_ns``, the stack-clock time the message became available to the stack
  (sensor latency included). Replay feeds inputs in (arrival_ns, file order); outputs have
  arrival_ns = t_ns unless the caller says otherwise;
- ``sequence`` = the recorder's write counter (mod 2**32), so plain MCAP tools see write order too.

The end record (``close(end=...)``): ``complete`` ("true"/"false") and ``end_ns``, the last time
up to which the log holds everything the run produced. A run interrupted part way (Ctrl-C, a
crash) still closes a valid file, and without it a reader could not tell that file from a finished
run: it would take the planned duration from the start record. The reader merges the end record's
keys into the metadata; a log written before the end record existed simply lacks them.

Ctrl-C: Python raises KeyboardInterrupt at whatever bytecode the main thread is at, which can be
inside the writer, between writing bytes and counting them into the data CRC, or between a chunk's
header and its body; closing that writer then wrote a file whose CRC check fails (2 of 15 interrupted
`sim --record` runs). So while the recorder writes or closes, a SIGINT is held and raised as soon as
the write is done, when the writer's state matches its file again (see ``_InterruptGuard``).

The recorder does no I/O beyond its file: the git revision is a parameter, found by the CLI.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import BinaryIO

from runtime.logs.codec import Encoded, LogCodec
from runtime.logs.mcap_write import McapWriter
from runtime.logs.topics import viz_topic

METADATA_NAME = "rtdrive"
END_METADATA_NAME = "rtdrive.end"  # written at close: how far the recording got (see the module notes)
END_KEYS = ("complete", "end_ns")
REQUIRED_METADATA = ("scenario", "seed", "config_toml")
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
# zstd level -1 (a "fast" level), from the sweep in `python -m benchmarks.bench_logs` on the lidar +
# camera batch: level 3 (zstd's default) ~35-60 MB/s, level 1 ~70-120 MB/s, level -1 ~100-150 MB/s
# with the same file size as level 1 (ratio 1.39: lidar floats barely compress at any level, while
# rendered images compress well already at fast levels), level -5 only slightly faster but larger.
DEFAULT_ZSTD_LEVEL = -1
_U64_MAX = 2**64 - 1


def rtdrive_version() -> str:
    try:
        return version("rtdrive")
    except PackageNotFoundError:
        return "0+unknown"


def run_metadata(scenario: str, seed: int, config_toml: str, git_revision: str = "") -> dict[str, str]:
    """The metadata a recorded run carries; ``git_revision`` comes from the CLI (``git rev-parse``)."""
    return {"scenario": scenario, "seed": str(int(seed)), "config_toml": config_toml,
            "rtdrive_version": rtdrive_version(), "git_revision": git_revision}


def _string_map(metadata: Mapping[str, object]) -> dict[str, str]:
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, (str, int)) or isinstance(value, bool):
            raise TypeError(f"recorder metadata {key!r}: keys are str and values str or int, got {value!r}")
        out[key] = str(value)
    return out


def end_metadata(complete: bool, end_ns: int) -> dict[str, str]:
    """The end record: whether the run finished, and the time up to which the log is whole."""
    return {"complete": "true" if complete else "false", "end_ns": str(int(end_ns))}


def _check_time(name: str, value: object) -> int:
    as_int = int(value)
    if as_int != value or not 0 <= as_int <= _U64_MAX:
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return as_int


class _InterruptGuard:
    """Holds SIGINT while the recorder is inside the writer, and raises it right after.

    Installed only where Python's own SIGINT handler is (the main thread, nobody else's handler set):
    it then behaves exactly like that handler outside a write. Elsewhere it does nothing, and an
    interrupt in a write can still tear the file (a reader reports it, salvage keeps what precedes)."""

    def __init__(self) -> None:
        self._depth = 0  # enter() minus leave(): sections nest (a run's closing flush holds its writes)
        self._pending = False
        self._installed = (threading.current_thread() is threading.main_thread()
                           and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if self._installed:
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self._depth:
            self._pending = True  # raised by the outermost leave(), once the writer is consistent
            return
        signal.default_int_handler(signum, frame)

    def enter(self) -> None:
        self._depth += 1

    def leave(self) -> None:
        """End of a held section; the outermost one raises the interrupt that came during it, now
        that the file is consistent."""
        self._depth -= 1
        if self._pending and not self._depth:
            self._pending = False
            raise KeyboardInterrupt

    def uninstall(self) -> None:
        # Only if still ours: whoever replaced it after us owns SIGINT now.
        if self._installed and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._installed = False


class Recorder:
    """Write core messages to an MCAP file.

    >>> with Recorder("run.mcap", run_metadata("cut_in", 7, toml_text, rev)) as rec:
    ...     rec.write("/sensors/lidar/top", scan, arrival_ns=scan.t_ns + latency_ns)

    From construction to ``close()``, a recorder made in the main thread holds the SIGINT handler
    (see ``_InterruptGuard``); ``close()`` gives Python's own back.
    """

    def __init__(self, path: str, metadata: Mapping[str, object], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 zstd_level: int = DEFAULT_ZSTD_LEVEL, viz: bool = True, extra_types: Iterable[type] = ()):
        missing = [key for key in REQUIRED_METADATA if key not in metadata]
        if missing:
            raise ValueError(f"recorder metadata lacks {missing} (required: {list(REQUIRED_METADATA)})")
        record = {"rtdrive_version": rtdrive_version(), "git_revision": "", **_string_map(metadata)}
        self._codec = LogCodec(extra_types)
        self._viz = viz
        self._file: BinaryIO = open(path, "wb")
        self._writer = McapWriter(self._file, chunk_size=chunk_size, zstd_level=zstd_level,
                                  library=f"rtdrive {record['rtdrive_version']}")
        self._writer.add_metadata(METADATA_NAME, record)
        self._schemas: dict[str, int] = {}
        self._channels: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        self._topic_types: dict[str, type] = {}
        self._sequence = 0
        self._closed = False
        self.bytes_in = 0  # payload bytes handed to the writer (before compression)
        self._guard = _InterruptGuard()  # last: nothing after it can fail and leave it installed

    # ------------------------------------------------------------------------------------------
    def write(self, topic: str, msg: object, log_time_ns: int | None = None, *,
              arrival_ns: int | None = None) -> None:
        """Record ``msg`` on ``topic``; log time defaults to ``msg.t_ns``, arrival to the log time."""
        if self._closed:
            raise RuntimeError("write() on a closed Recorder")
        if not topic.startswith("/"):
            raise ValueError(f"topic {topic!r} must start with '/'")
        known = self._topic_types.setdefault(topic, type(msg))
        if known is not type(msg):
            raise TypeError(f"topic {topic} carries {known.__name__}; refusing a {type(msg).__name__}")
        log_time = _check_time("log_time_ns", msg.t_ns if log_time_ns is None else log_time_ns)
        arrival = _check_time("arrival_ns", log_time if arrival_ns is None else arrival_ns)
        self._guard.enter()
        try:
            self._add(topic, self._codec.encode(msg), log_time, arrival)
            if self._viz:
                for suffix, encoded in self._codec.viz(msg):
                    self._add(viz_topic(topic, suffix), encoded, log_time, arrival)
        finally:
            # An error of the write itself propagates; a held Ctrl-C is raised here otherwise.
            self._guard.leave()

    def _add(self, topic: str, encoded: Encoded, log_time: int, arrival: int) -> None:
        key = (topic, encoded.schema_name, encoded.channel_metadata)
        channel_id = self._channels.get(key)
        if channel_id is None:
            schema_id = self._schemas.get(encoded.schema_name)
            if schema_id is None:
                schema_id = self._writer.add_schema(
                    encoded.schema_name, "protobuf", self._codec.schema_data(encoded.schema_name))
                self._schemas[encoded.schema_name] = schema_id
            channel_id = self._writer.add_channel(topic, "protobuf", schema_id, dict(encoded.channel_metadata))
            self._channels[key] = channel_id
        self._writer.add_message(channel_id, log_time, arrival, self._sequence & 0xFFFFFFFF, encoded.payload)
        self._sequence += 1
        self.bytes_in += len(encoded.payload)

    # ------------------------------------------------------------------------------------------
    def close(self, end: Mapping[str, object] | None = None) -> None:
        """Finish the summary and footer; idempotent. ``end`` (``end_metadata(...)``): written as the
        "rtdrive.end" metadata record first."""
        if self._closed:
            return
        self._closed = True
        self._guard.enter()  # a second Ctrl-C while closing must not cut the summary short
        try:
            if end is not None:
                self._writer.add_metadata(END_METADATA_NAME, _string_map(end))
            self._writer.finish()
        finally:
            # Each cleanup runs even if the one before raised (a full disk fails the file's last
            # flush): a guard left installed would swallow every later Ctrl-C of the process.
            try:
                self._file.close()
            finally:
                try:
                    self._guard.uninstall()
                finally:
                    self._guard.leave()

    @contextmanager
    def interrupts_held(self) -> Iterator[None]:
        """Hold Ctrl-C over several writes (and a close), not only within each: a caller whose
        records belong together (a run's last timings and sync decisions, then the end record)
        writes them all before the interrupt is raised, when the block ends."""
        self._guard.enter()
        try:
            yield
        finally:
            self._guard.leave()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # Finish even after an exception: what was recorded up to the failure is what a user
        # needs to debug it, and a finished file reads without salvage.
        self.close()
