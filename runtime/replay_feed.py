"""Replay's inputs: a log split into what the replay holds (recorded outputs, timings, sync
decisions) and the sensor inputs it feeds, and the feed that posts those inputs on the scheduler a
slice ahead of the run, so that a streamed log keeps them in the file until they are due."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from runtime.logs import LogContents, LogMessage, LogStream
from runtime.scheduler import Scheduler

# Stream aliases for logs recorded elsewhere under the topic convention of runtime.logs.topics.
_STREAM_ALIASES = {"wheel_speed": "wheel"}


def stream_topic(topic: str, streams: set[str]) -> str | None:
    """The stack input topic a recorded /sensors/ topic feeds (None: no stream of the stack takes it)."""
    parts = topic.split("/")
    name = _STREAM_ALIASES.get(parts[2], parts[2]) if len(parts) > 2 else ""
    return f"/sensors/{name}" if name in streams else None


def split_inputs(contents: LogContents | LogStream) -> tuple[Iterable[LogMessage], Iterator[LogMessage], int]:
    """(the recorded outputs, timings and sync decisions; the sensor inputs, in arrival order; the
    last arrival time) of a log read whole or streamed."""
    if isinstance(contents, LogStream):
        if any(not t.startswith("/sensors/") for t in contents.streamed_topics) or any(
                m.topic.startswith("/sensors/") for m in contents.resident):
            raise ValueError("replay streams the /sensors/ topics and holds the rest: stream() the log "
                             "with its default `streamed`")
        return contents.resident, contents.streamed(), contents.last_arrival_ns
    messages = contents.messages
    return ([m for m in messages if not m.topic.startswith("/sensors/")],
            (m for m in messages if m.topic.startswith("/sensors/")),
            max((m.arrival_ns for m in messages), default=0))


class SensorFeed:
    """Posts the recorded sensor inputs on the scheduler as the replay reaches them, not all at once:
    a streamed log then holds only the inputs of the next slice (plus ``lead_ns``) in memory.

    Posted this way they are delivered exactly as if all had been posted before the run. The
    scheduler orders deliveries of one instant by posting sequence; an input must therefore be
    posted before any stage output due at the same instant is. A stage output is queued while the
    run producing it is processed, at most its (replayed) compute time ahead in latency mode, at
    once in ideal mode. Feeding every input due up to the slice's end + the longest recorded
    compute time before running the slice keeps the inputs first."""

    def __init__(self, messages: Iterator[LogMessage], sched: Scheduler, streams: set[str], end_ns: int,
                 lead_ns: int) -> None:
        self._messages, self._sched, self._streams = messages, sched, streams
        self._end_ns, self.lead_ns = end_ns, lead_ns
        self._next = next(messages, None)
        self.fed = 0
        self.ignored: dict[str, int] = defaultdict(int)

    def feed_for(self, slice_end_ns: int) -> None:
        limit = min(slice_end_ns + self.lead_ns, self._end_ns)
        m = self._next
        while m is not None and m.arrival_ns <= limit:
            topic = stream_topic(m.topic, self._streams)
            if topic is None:
                self.ignored[m.topic] += 1
            else:
                self._sched.post(m.arrival_ns, topic, m.msg)
                self.fed += 1
            m = next(self._messages, None)
        self._next = m
