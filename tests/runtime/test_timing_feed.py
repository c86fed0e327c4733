"""``rtdrive timing --log`` preloads a log's inputs up to ``--log-preload-mb`` and streams a larger
one: either way the stack gets exactly the inputs it got when every message was decoded and posted
before the run; streamed, only a window of them is held at a time."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.messages import ImuSample, WheelSpeed
from runtime.logs import LogMessage, Recorder, read, run_metadata, stream
from runtime.replay_feed import stream_topic
from runtime.timing_feed import (DEPTH, LEAD_NS, MB, SLICE_NS, LogFeed, input_bytes, preloads, run_fed,
                                 streamed_note)

MS = 1_000_000
STREAMS = {"imu", "wheel"}


def _messages(n: int, period_ns: int = 10 * MS) -> list[LogMessage]:
    """n inputs in arrival order: wheel and IMU samples, and a topic no stream takes."""
    out = []
    for i in range(n):
        t = i * period_ns
        if i % 5 == 4:
            out.append(LogMessage("/sensors/unknown", t, t, i, WheelSpeed(t, 0.0)))
        elif i % 2:
            out.append(LogMessage("/sensors/wheel_speed", t, t, i, WheelSpeed(t, float(i))))
        else:
            out.append(LogMessage("/sensors/imu", t, t + 1, i, ImuSample(t, np.zeros(3), float(i))))
    return out


def _posted_up_front(messages: list[LogMessage], end_ns: int) -> list[tuple[int, str, object]]:
    """What ``time_log`` posted before it streamed: every input a stream takes, up to end_ns."""
    out = []
    for m in messages:
        topic = stream_topic(m.topic, STREAMS) if m.topic.startswith("/sensors/") else None
        if topic is not None and m.arrival_ns <= end_ns:
            out.append((m.arrival_ns, topic, m.msg))
    return out


class _Counting:
    """The source of a feed, counting the messages taken from it (decoded, in a real log)."""

    def __init__(self, messages: list[LogMessage]) -> None:
        self.messages, self.taken = messages, 0

    def __iter__(self):
        for m in self.messages:
            self.taken += 1
            yield m


class _FakeScheduler:
    """Posts in a list; ``run_until(t)`` delivers (drops) what is due and checks nothing due is missing."""

    def __init__(self, source: _Counting, expected: list[tuple[int, str, object]]) -> None:
        self.source, self.expected = source, expected
        self.posted: list[tuple[int, str, object]] = []
        self.delivered = 0
        self.most_held = 0  # taken from the source and not delivered yet, at its highest

    def post(self, t_ns: int, topic: str, msg: object) -> None:
        self.posted.append((t_ns, topic, msg))

    def run_until(self, t_ns: int) -> None:
        due = sum(1 for item in self.expected if item[0] <= t_ns)
        # Every input due by t_ns is posted before the loop runs to t_ns (as if all were posted first).
        assert self.posted[:due] == self.expected[:due], f"an input due by {t_ns} ns was not posted"
        self.most_held = max(self.most_held, self.source.taken - self.delivered)
        self.delivered = sum(1 for m in self.source.messages[:self.source.taken] if m.arrival_ns <= t_ns)


class _RunClock:
    """A loop that keeps up: the wall clock reads the time of the last slice run."""

    def __init__(self, sched: _FakeScheduler) -> None:
        self.sched, self.t_ns = sched, 0

    def now_ns(self) -> int:
        return self.t_ns


@pytest.mark.parametrize("mode", ["streamed", "preloaded"])
def test_both_feeds_post_exactly_what_was_posted_up_front(mode):
    n, end_ns = 3000, 25_000 * MS  # 30 s of inputs at 100 Hz, the run stopped at 25 s
    messages = _messages(n)
    expected = _posted_up_front(messages, end_ns)
    source = _Counting(messages)
    sched = _FakeScheduler(source, expected)
    with LogFeed(source, STREAMS, end_ns) as feed:
        time.sleep(0.05)  # the decoder fills its queue, as while the perception processes start
        if mode == "streamed":
            run_fed(sched, _RunClock(sched), feed, end_ns)
        else:
            feed.preload(sched.post)
            taken = source.taken
            for t_ns in range(0, end_ns + 1, SLICE_NS):  # the run: nothing is decoded during it
                sched.run_until(t_ns)
            assert source.taken == taken and feed.wait_s == 0.0
    assert sched.posted == expected and feed.fed == len(expected)  # same inputs, times, order
    assert source.taken < n  # nothing past the end is decoded
    if mode == "streamed":
        # Held at once: the decoder's queue (with the skipped messages between its inputs), the message
        # in its hands and the lead past the slice; posting up front held every one of the 2500.
        window = 2 * (DEPTH + (SLICE_NS + LEAD_NS) // (10 * MS))
        assert sched.most_held <= window < n // 10, sched.most_held
    else:
        assert sched.most_held >= len(expected)


def test_a_preloaded_feeds_decoder_has_ended_before_the_run():
    with LogFeed(iter(_messages(500)), STREAMS, 10**12) as feed:
        feed.preload(lambda *item: None)
        assert not any(t.name == "rtdrive-log-feed" and t.is_alive() for t in threading.enumerate())
        feed.feed_for(lambda *item: pytest.fail("posted twice"), 10**12)  # nothing left to post


def test_the_log_is_preloaded_at_or_under_the_limit_streamed_over_it_or_at_zero():
    assert preloads(1_000_000, 1.0) and preloads(999_999, 1.0) and preloads(123_457, 123_457 / MB)
    assert not preloads(1_000_001, 1.0) and not preloads(123_457, 123_456 / MB)
    assert not preloads(0, 0.0) and not preloads(1, 0.0)  # 0: always streamed, even an empty log
    assert preloads(10**15, float("inf"))
    assert streamed_note(2_310_000_000, 1024.0) == (
        "rtdrive timing: the log's 2,310 MB of sensor inputs are over --log-preload-mb 1024: streamed during "
        "the run, which adds decoding to the measured loop")


def test_a_loop_running_late_gets_the_inputs_due_by_the_wall_clock():
    messages = _messages(400)
    expected = _posted_up_front(messages, 3_000 * MS)
    source = _Counting(messages)
    posted: list[tuple[int, str, object]] = []
    with LogFeed(source, STREAMS, 3_000 * MS) as feed:
        feed.feed_for(lambda *item: posted.append(item), 2_000 * MS)  # a wall clock 2 s past the slice
    assert posted == [item for item in expected if item[0] <= 2_000 * MS]


def test_no_input_at_all_is_known_before_the_run():
    with LogFeed(iter(_messages(10)), {"camera"}, 10**12) as feed:
        assert feed.first_arrival_ns() is None
    with LogFeed(iter(_messages(10)[2:]), STREAMS, 10**12) as feed:
        assert feed.first_arrival_ns() == 20 * MS + 1 and feed.fed == 0  # peeking feeds nothing


def test_a_decoder_error_is_raised_on_the_loop_thread():
    def failing():
        yield from _messages(3)
        raise ValueError("the file changed since it was walked")

    with LogFeed(failing(), STREAMS, 10**12) as feed:
        with pytest.raises(ValueError, match="changed since"):
            feed.feed_for(lambda *item: None, 10**12)


def test_closing_a_feed_stops_its_decoder_even_when_it_waits_for_room():
    feed = LogFeed(iter(_messages(1000)), STREAMS, 10**12, depth=2)
    with feed:
        time.sleep(0.05)  # the queue is full: the decoder waits
    assert not any(t.name == "rtdrive-log-feed" and t.is_alive() for t in threading.enumerate())


@pytest.fixture(scope="module")
def oracle_log(tmp_path_factory):
    from runtime.cli import main

    log = tmp_path_factory.mktemp("timing_feed") / "run.mcap"
    assert main(["sim", "--scenario", "free_road", "--perception", "oracle", "--duration", "2", "--record",
                 str(log)]) == 0
    return log


def test_stream_knows_where_the_whole_recording_ends_reading_only_some_topics(tmp_path):
    # The inputs end at 0.9 s, the recorded outputs at 1.5 s: a read of the inputs alone still
    # knows the recording's end (time_log runs to it, as when it read every topic).
    path = tmp_path / "run.mcap"
    with Recorder(str(path), run_metadata("s", 1, "")) as rec:
        for i in range(10):
            rec.write("/sensors/wheel_speed", WheelSpeed(i * 100 * MS, 1.0))
        rec.write("/planning/speed", WheelSpeed(1_000 * MS, 2.0), arrival_ns=1_500 * MS)
    whole = read(path)
    inputs = stream(path, topics=lambda t: t.startswith("/sensors/"))
    assert inputs.last_arrival_ns == 900 * MS and not inputs.resident
    assert inputs.last_arrival_any_ns == max(m.arrival_ns for m in whole.messages) == 1_500 * MS


@pytest.mark.parametrize("preload_mb", [0.0, 1024.0], ids=["streamed", "preloaded"])
def test_timing_log_feeds_the_same_inputs_preloaded_or_streamed(oracle_log, monkeypatch, preload_mb):
    """The realtime run gets every recorded input at its arrival time in arrival order, as when all
    were posted before the run; streamed, inputs posted and not yet delivered stay a window, not the log."""
    import runtime.timing as timing
    from runtime.closed_loop import RunOptions
    from runtime.scheduler import Scheduler

    held = {"now": 0, "most": 0}
    delivered: list[tuple[int, str, int]] = []

    class Counting(Scheduler):
        def post(self, t_ns, topic, message):
            if topic.startswith("/sensors/"):
                held["now"] += 1
                held["most"] = max(held["most"], held["now"])
            super().post(t_ns, topic, message)

        def _deliver(self, t_ns, topic, message):
            if topic.startswith("/sensors/"):
                held["now"] -= 1
                delivered.append((t_ns, topic, message.t_ns))
            super()._deliver(t_ns, topic, message)

    monkeypatch.setattr(timing, "Scheduler", Counting)
    report = timing.time_log(str(oracle_log), RunOptions(perception=None), timing.TimingBudgets(), "<defaults>",
                             0, None, preload_mb=preload_mb)
    whole = read(oracle_log, order="arrival")
    end_ns = max(m.arrival_ns for m in whole.messages)
    expected = [(t, topic, msg.t_ns) for t, topic, msg in _posted_up_front_log(whole.messages, end_ns,
                                                                                _stack_streams(whole))]
    assert delivered == expected and report["messages_fed"] == len(expected) > 100
    assert report["duration_s"] == end_ns / 1e9
    if preload_mb:  # every input posted before the run, all of them held at once
        assert report["log_feed"] == "preloaded" and held["most"] == len(expected)
        assert report["log_feed_wait_s"] == 0.0
    else:
        assert report["log_feed"] == "streamed" and held["most"] < len(expected) // 2, (held["most"], len(expected))


def _stack_streams(whole) -> set[str]:
    from dataclasses import replace

    from runtime.closed_loop import ClosedLoop
    from runtime.replay import setup_from_log

    setup = setup_from_log(whole.metadata)
    loop = ClosedLoop(setup.scenario, replace(setup.opts, progress=None), setup.stack_cfg)
    return {spec.name for spec in loop.stack.stream_specs}


def _posted_up_front_log(messages, end_ns: int, streams: set[str]):
    for m in messages:
        topic = stream_topic(m.topic, streams) if m.topic.startswith("/sensors/") else None
        if topic is not None and m.arrival_ns <= end_ns:
            yield m.arrival_ns, topic, m.msg


def _exact_input_bytes(path) -> int:
    """The sum of the raw payloads of the /sensors/ messages, every chunk decompressed."""
    from runtime.logs.mcap_walk import walk_file

    with open(path, "rb") as f:
        walked = walk_file(f)
    return sum(len(m.data) for m in walked.messages if walked.channels[m.channel_id][1].startswith("/sensors/"))


def _is_input(topic: str) -> bool:
    return topic.startswith("/sensors/")


def test_a_logs_input_size_comes_from_its_index_within_its_schema_records(oracle_log):
    exact = _exact_input_bytes(oracle_log)
    # The index counts the Schema and Channel records written between two messages as the first's.
    assert exact > 10_000 and exact <= input_bytes(oracle_log, _is_input) <= exact + 10_000
    assert input_bytes(oracle_log, lambda topic: False) == 0


@pytest.mark.parametrize("indexed", [True, False])
def test_a_log_with_or_without_message_indexes_gets_its_input_size(tmp_path, indexed):
    from mcap.writer import IndexType, Writer

    path = tmp_path / "other.mcap"
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=4096, index_types=IndexType.ALL if indexed else IndexType.NONE)
        writer.start()
        schema = writer.register_schema("x", "", b"")
        channels = {topic: writer.register_channel(topic, "", schema)
                    for topic in ("/sensors/camera", "/planning/plan", "/sensors/imu")}
        for i in range(300):
            topic = ("/sensors/camera", "/planning/plan", "/sensors/imu")[i % 3]
            writer.add_message(channels[topic], i, bytes(7 * i % 1000), i)
        writer.finish()
    from runtime.timing_feed import _indexed_input_bytes

    with open(path, "rb") as f:  # without an index, the file is walked instead
        assert (_indexed_input_bytes(f, _is_input) is not None) == indexed
    # Channel records sit between this file's messages too: only the first one's size can be off.
    exact = _exact_input_bytes(path)
    assert exact <= input_bytes(path, _is_input) <= exact + (200 if indexed else 0)


def _timing_log(oracle_log, tmp_path, capsys, *extra: str) -> tuple[int, dict, str, list[str]]:
    import json

    from runtime.cli import main

    out = tmp_path / "t.json"
    capsys.readouterr()
    rc = main(["timing", "--log", str(oracle_log), "--duration", "0.5", "--json", str(out), *extra])
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if "BUDGET BROKEN" not in line]
    return rc, json.loads(out.read_text()), captured.out, err


def test_cli_timing_log_preloads_at_and_under_the_limit_streams_over_it(oracle_log, tmp_path, capsys):
    size = input_bytes(oracle_log, _is_input)
    for limit in (repr(size / MB), repr(2 * size / MB), None):  # at, under, the default 1024
        rc, rep, out, err = _timing_log(oracle_log, tmp_path, capsys,
                                        *(("--log-preload-mb", limit) if limit else ()))
        assert rc in (0, 1) and rep["log_feed"] == "preloaded" and err == [], (limit, err)
        assert rep["log_input_mb"] == round(size / MB, 3) and rep["log_feed_wait_s"] == 0.0
        assert rep["log_preload_mb"] == (float(limit) if limit else 1024.0) and rep["messages_fed"] > 10
        assert "log feed: preloaded before the run" in out, out
    fed = rep["messages_fed"]
    for limit in (repr((size - 1) / MB), "0"):  # a byte over; 0 always streams
        rc, rep, out, err = _timing_log(oracle_log, tmp_path, capsys, "--log-preload-mb", limit)
        assert rc in (0, 1) and rep["log_feed"] == "streamed" and rep["messages_fed"] == fed
        assert err == [f"rtdrive timing: the log's {size / MB:.2g} MB of sensor inputs are over --log-preload-mb "
                       f"{float(limit):g}: streamed during the run, which adds decoding to the measured loop"], err
        assert "log feed: streamed during the run" in out, out


@pytest.mark.parametrize("argv", [["--log", "{log}", "--log-preload-mb", "-1"],
                                  ["--log", "{log}", "--log-preload-mb", "nan"],
                                  ["--scenario", "cut_in", "--log-preload-mb", "10"]])
def test_cli_timing_bad_log_preload_mb_is_a_one_line_usage_error(oracle_log, capsys, argv):
    from runtime.cli import main

    capsys.readouterr()
    assert main(["timing", *(a.format(log=oracle_log) for a in argv), "--no-latency-loop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--log-preload-mb" in err[0], err
