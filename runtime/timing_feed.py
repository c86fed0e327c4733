"""The timing harness's inputs from a recorded log, streamed: memory holds a window of the log.

``rtdrive timing --log`` used to decode every message of the log and post every sensor input on
the scheduler before the run, so its memory grew with the log (peak RSS 660 MiB for a 3 s camera
and lidar log, 1050 MiB for 12 s; 516 and 518 MiB streamed). Now the log is walked once up front
(``runtime.logs.stream``: CRCs, damage and decoding checked before the run, as before) and its
sensor inputs stay in the file:

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

The price is CPU during the run: the decoding that used to precede it (about 0.2 s per second of
a camera and lidar log) now runs alongside the stack, as the world process does for a scenario.
On an idle multi-core host it takes a core the stack does not use; on a loaded two-core one it
competes with the stack, and the run's control jitter shows it.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

from runtime.logs import LogMessage
from runtime.replay_feed import stream_topic

SLICE_NS = 100_000_000  # the run advances this far between feeds
LEAD_NS = 200_000_000  # inputs are posted this far ahead of the slice's end: two slices of slack
DEPTH = 64  # decoded inputs the decoder thread may hold ready [messages]; ~0.3 s of a camera+lidar log
_END = object()  # the decoder thread's last item
_PUT_POLL_S = 0.1  # how often a blocked decoder thread checks whether the feed was closed


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
