"""The timing harness's inputs from a recorded log: preloaded before the run, or streamed during it.

Preloaded (every input decoded and posted before the run, ``LogFeed.preload``), the measured loop
has the CPU to itself, but memory grows with the log: peak RSS 622 MiB for a 3 s camera and lidar
log (134 MB of inputs; 1050 MiB for 12 s when every topic was decoded). Streamed, memory holds a
window (516-527 MiB, flat in length) but the decoding runs during the run: on the shared 2-core
host control jitter p99 read 0.11-0.30 ms preloaded against 0.69-3.97 ms streamed for the 3 s log
(three runs each, alternating; 9-18 against 23-29 ms on a busier day). So ``time_log`` preloads a
log whose sensor inputs total at most ``--log-preload-mb`` (``input_bytes``: from the file's message
indexes, nothing decoded) and streams a longer one. Both post through ``LogFeed.feed_for`` from the
same decoder thread: the same inputs, at the same times, in the same order.

Streamed, the log is walked once up front (``runtime.logs.stream``: CRCs, damage and decoding
checked before the run, as for a preloaded one) and its sensor inputs stay in the file:

- a decoder thread reads them back in arrival order and queues at most ``DEPTH`` decoded ones.
  Reading back costs about 1 ms a message (decompression, CRC, protobuf): on the loop thread that
  would delay control by tens of milliseconds a slice. Decompression, CRC and file reads release
  the GIL, and the loop thread gets it back within the run's shortened switch interval;
- the run advances in slices of ``SLICE_NS``; before each, the loop thread posts every queued input
  due up to the slice's end (or the wall clock, if the loop runs late) plus ``LEAD_NS``.

What the stack sees is unchanged: the same inputs posted at the same recorded arrival times in the
same order, each before the loop processes any event later than it, so deliveries come in the same
order as with everything posted up front. The one order the slices could change is a tie to the
nanosecond between an input and a stage output stamped more than ``LEAD_NS`` past the wall clock
of the last feed; the input would then come second instead of first.

The price is CPU during the run: the decoding a preloaded log gets done before it (about 0.2 s
per second of a camera and lidar log) runs alongside the stack, as the world process does for a scenario.
On an idle multi-core host it takes a core the stack does not use; on a loaded two-core one it
competes with the stack, and the run's control jitter shows it.
"""
from __future__ import annotations

import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from runtime.logs import LogMessage
from runtime.replay_feed import stream_topic
from runtime.timing_cli import format_mb

SLICE_NS = 100_000_000  # the run advances this far between feeds
LEAD_NS = 200_000_000  # inputs are posted this far ahead of the slice's end: two slices of slack
DEPTH = 64  # decoded inputs the decoder thread may hold ready [messages]; ~0.3 s of a camera+lidar log
_END = object()  # the decoder thread's last item
_PUT_POLL_S = 0.1  # how often a blocked decoder thread checks whether the feed was closed
MB = 1_000_000  # --log-preload-mb's unit [bytes]
_MESSAGE_INDEX_OP = 0x07
_MESSAGE_RECORD_HEAD = 1 + 8 + 2 + 4 + 8 + 8  # opcode, length, channel, sequence, log and publish time [bytes]
_INDEX_HEAD = struct.Struct("<BQHI")  # MessageIndex: opcode, record length, channel id, records length
_INDEX_ENTRY = struct.Struct("<QQ")  # log time, offset of the message record in the uncompressed chunk


class LogFeed:
    """The inputs of ``messages`` (a log's sensor messages in arrival order) that a stream of
    ``streams`` takes, up to ``end_ns``, decoded by a thread ``depth`` ahead and posted by ``feed_for``.

    ``with LogFeed(...) as feed:`` starts the thread; leaving stops it."""

    def __init__(self, messages: Iterable[LogMessage], streams: set[str], end_ns: int, depth: int = DEPTH) -> None:
        self._messages, self._streams, self._end_ns = messages, streams, end_ns
        self._ready: queue.Queue = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._decode, name="rtdrive-log-feed", daemon=True)
        self._head: tuple[int, str, object] | object | None = None  # taken from the queue, not posted yet
        self.fed = 0
        self.wait_s = 0.0  # time the loop thread waited for the decoder [s]: ~0 while it keeps ahead

    def __enter__(self) -> "LogFeed":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5.0)

    def preload(self, post: Callable[[int, str, object], None]) -> None:
        """``post`` every input (up to the end) now, before the run, and let the decoder thread end:
        nothing is decoded once the run starts. The same ``feed_for`` a streamed run posts through."""
        self.feed_for(post, self._end_ns)
        self._thread.join()  # it queued its last item: _END (nothing is due past the end)
        self.wait_s = 0.0  # waiting for the decoder before the run is no part of the run

    def first_arrival_ns(self) -> int | None:
        """The arrival time of the first input, waiting for the decoder (None: no input at all)."""
        head = self._peek()
        return None if head is _END else head[0]

    def feed_for(self, post: Callable[[int, str, object], None], limit_ns: int) -> None:
        """``post`` (on the scheduler's loop thread) every input due up to ``limit_ns`` not posted yet."""
        while True:
            head = self._peek()
            if head is _END or head[0] > limit_ns:
                return
            post(*head)
            self.fed += 1
            self._head = None

    def _peek(self):
        if self._head is None:
            try:
                self._head = self._ready.get_nowait()
            except queue.Empty:
                t0 = time.perf_counter()
                self._head = self._ready.get()
                self.wait_s += time.perf_counter() - t0
        if isinstance(self._head, BaseException):
            raise self._head  # the decoder's error (e.g. the file changed since the walk), raised here
        return self._head

    def _decode(self) -> None:
        try:
            for m in self._messages:
                if m.arrival_ns > self._end_ns:
                    break  # arrival order: nothing after it is due
                topic = stream_topic(m.topic, self._streams) if m.topic.startswith("/sensors/") else None
                if topic is not None and not self._put((m.arrival_ns, topic, m.msg)):
                    return
            self._put(_END)
        except Exception as exc:  # handed to the loop thread, which raises it
            self._put(exc)

    def _put(self, item) -> bool:
        """Queue ``item``, waiting for room; False when the feed was closed meanwhile."""
        while not self._closed.is_set():
            try:
                self._ready.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False


def run_fed(sched, clock, feed: LogFeed, end_ns: int) -> None:
    """Run ``sched`` (a realtime ``Scheduler``) to ``end_ns`` in slices, each preceded by posting the
    inputs ``feed`` holds up to the slice's end (or ``clock``'s wall time, when the loop runs late)
    plus the lead: every input is queued before the loop processes an event later than it, as if all
    had been posted before the run."""
    t_ns = 0
    while True:
        feed.feed_for(sched.post, max(t_ns, clock.now_ns()) + LEAD_NS)
        sched.run_until(t_ns)
        if t_ns >= end_ns:
            return
        t_ns = min(t_ns + SLICE_NS, end_ns)


def preloads(input_bytes: int, preload_mb: float) -> bool:
    """Whether a log with ``input_bytes`` of sensor inputs is preloaded under ``--log-preload-mb``
    (0: never). Compared in MB, so a limit written as ``input_bytes / MB`` is "at" it exactly."""
    return preload_mb > 0 and input_bytes / MB <= preload_mb


def streamed_note(input_bytes: int, preload_mb: float) -> str:
    """The stderr line of a streamed run: the timing it reports includes the feed's decoding."""
    return (f"rtdrive timing: the log's {format_mb(input_bytes / MB)} MB of sensor inputs are over "
            f"--log-preload-mb {preload_mb:g}: streamed during the run, which adds decoding to the measured loop")


def input_bytes(path: str | Path, is_input: Callable[[str], bool]) -> int:
    """The raw size of the messages of the topics ``is_input`` picks, in a file already walked
    (``runtime.logs.stream`` checked it): from its summary and message indexes, nothing decompressed,
    or, where the file has no complete index, from a walk that decompresses but decodes nothing.

    From the index, a message's size is the distance to the next indexed message of its chunk less
    the record's head; a Schema or Channel record written between two messages (once per channel, a
    few KB at most) counts towards the one before it, so this can exceed the exact sum by that much."""
    with open(path, "rb") as f:
        try:
            indexed = _indexed_input_bytes(f, is_input)
        except Exception:  # an index we cannot use (another writer's) is a reason to count, not to fail
            indexed = None
        if indexed is not None:
            return indexed
        return _walked_input_bytes(f, is_input)


def _indexed_input_bytes(f, is_input: Callable[[str], bool]) -> int | None:
    """The sum from the message indexes; None when the file has none, or they miss a message."""
    from mcap.reader import make_reader

    summary = make_reader(f).get_summary()
    if summary is None or summary.statistics is None:
        return None
    inputs = {cid for cid, channel in summary.channels.items() if is_input(channel.topic)}
    total = counted = 0
    for chunk in summary.chunk_indexes:
        f.seek(chunk.chunk_start_offset + chunk.chunk_length)
        data = f.read(chunk.message_index_length)
        places: list[tuple[int, int]] = []  # (offset in the uncompressed chunk, channel id)
        pos = 0
        while pos < len(data):
            op, length, channel_id, entries_length = _INDEX_HEAD.unpack_from(data, pos)
            if op != _MESSAGE_INDEX_OP:
                return None
            first = pos + _INDEX_HEAD.size
            places += [(offset, channel_id) for _, offset
                       in _INDEX_ENTRY.iter_unpack(data[first:first + entries_length])]
            pos += 9 + length  # the record's opcode and length, then its content
        places.sort()
        ends = [offset for offset, _ in places[1:]] + [chunk.uncompressed_size]
        total += sum(end - offset - _MESSAGE_RECORD_HEAD
                     for (offset, channel_id), end in zip(places, ends) if channel_id in inputs)
        counted += len(places)
    # Messages outside chunks, or chunks written without message indexes: the index does not hold them.
    return total if counted == summary.statistics.message_count else None


def _walked_input_bytes(f, is_input: Callable[[str], bool]) -> int:
    from runtime.logs.mcap_walk import walk_file

    total = 0

    def count(walked, raws) -> None:
        nonlocal total
        total += sum(len(raw.data) for raw in raws if is_input(walked.channels[raw.channel_id][1]))

    f.seek(0)
    walk_file(f, count)
    return total
