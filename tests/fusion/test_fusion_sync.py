from dataclasses import dataclass

import numpy as np
import pytest

from fusion.sync import Decision, StreamConfig, SyncConfig, SyncState, sync_step

MS = 1_000_000
CFG = SyncConfig(streams={"lidar": StreamConfig(50 * MS, 0), "camera": StreamConfig(100 * MS, 0),
                          "radar": StreamConfig(30 * MS, -20 * MS)})


@dataclass(frozen=True, slots=True)
class Msg:
    t_ns: int
    payload: str = ""


def _run(schedule, cfg=CFG):
    """schedule: list of (now_ms, [(stream, t_ms), ...]); returns released (stream, t), records."""
    state, out, recs = SyncState(), [], []
    for now_ms, arrivals in schedule:
        state, released, records = sync_step(state, [(s, Msg(t * MS, f"{s}{t}")) for s, t in arrivals],
                                             now_ms * MS, cfg)
        out += [(r.stream, r.msg.t_ns // MS) for r in released]
        recs += records
    return state, out, recs


def test_out_of_order_arrivals_are_released_in_timestamp_order():
    state, out, _ = _run([(10, [("lidar", 10)]), (40, [("camera", 5), ("lidar", 40)]),
                          (60, [("lidar", 30)]), (300, [])])
    assert out == [("camera", 5), ("lidar", 10), ("lidar", 30), ("lidar", 40)]
    times = [t for _, t in out]
    assert times == sorted(times)
    assert state.counters.applied == 4 and not state.buffer


def test_message_later_than_its_window_is_dropped_and_counted():
    state, out, recs = _run([(100, [("lidar", 40)]), (100, [("camera", 40)]), (400, [])])
    assert out == [("camera", 40)]  # lidar: 60 ms late > 50 ms window; camera: within 100 ms
    late = [r for r in recs if r.decision == Decision.DROPPED_LATE]
    assert [(r.stream, r.t_ns) for r in late] == [("lidar", 40 * MS)]
    assert state.counters.late == 1


def test_released_times_never_go_backwards_under_random_jitter():
    rng = np.random.default_rng(0)
    state, times, late = SyncState(), [], 0
    for now_ms in range(0, 3000, 5):
        arrivals = []
        for stream, period in (("lidar", 100), ("camera", 33), ("radar", 50)):
            if now_ms % period < 5:
                # latency up to 1.5x the window: some arrive in time, some are too late
                age = int(rng.uniform(0, 1.5) * CFG.streams[stream].latency_window_ns // MS)
                arrivals.append((stream, Msg((now_ms - age) * MS)))
        state, released, records = sync_step(state, arrivals, now_ms * MS, CFG)
        times += [r.msg.t_ns for r in released]
        late += sum(r.decision == Decision.DROPPED_LATE for r in records)
    assert times == sorted(times) and len(times) > 50
    assert late > 10 and state.counters.late == late


def test_duplicates_are_idempotent():
    state, out, recs = _run([(10, [("lidar", 10), ("lidar", 10)]), (20, [("lidar", 10)]),
                             (200, []), (205, [("lidar", 10)])])
    assert out == [("lidar", 10)]
    decisions = [r.decision for r in recs]
    # twice while buffered, once after release (remembered behind the watermark)
    assert decisions.count(Decision.DROPPED_DUPLICATE) == 3
    assert decisions.count(Decision.APPLIED) == 1
    assert state.counters.duplicate == 3 and state.counters.late == 0


def test_clock_offset_moves_messages_onto_the_stack_clock():
    # radar's clock runs 20 ms ahead: its 60 is the stack's 40, before the lidar frame at 50.
    _, out, _ = _run([(60, [("lidar", 50), ("radar", 60)]), (300, [])])
    assert out == [("radar", 40), ("lidar", 50)]


def test_backwards_clock_jump_resets_with_an_event():
    state, out, recs = _run([(10, [("lidar", 10)]), (200, [("lidar", 190)]), (20, [("lidar", 15)]),
                             (300, [])])
    assert Decision.RESET in [r.decision for r in recs]
    assert state.counters.resets == 1
    # lidar 190 was still buffered at the jump and is discarded with the old timeline.
    assert out == [("lidar", 10), ("lidar", 15)]


def test_future_messages_are_dropped():
    state, out, _ = _run([(10, [("lidar", 500)]), (600, [])])
    assert out == [] and state.counters.future == 1


def test_decisions_replay_identically():
    sched = [(k * 7, [("lidar", k * 7 - (k % 3) * 9), ("camera", k * 5), ("radar", k * 6)])
             for k in range(1, 60)]
    a, b = _run(sched), _run(sched)
    assert a[1] == b[1] and a[2] == b[2]
    assert all(r.now_ns >= r.t_ns for r in a[2] if r.decision == Decision.APPLIED)


def test_unknown_stream_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown stream 'sonar'"):
        sync_step(SyncState(), [("sonar", Msg(0))], 0, CFG)


def test_retimed_message_equals_dataclasses_replace_and_leaves_the_original():
    import dataclasses
    from core.messages import EgoState
    from fusion.sync import _retimed
    msg = EgoState(5, np.array([1.0, 2.0, 0.3]), 4.0, 0.5, 0.01, np.eye(5))
    out = _retimed(msg, 9)
    ref = dataclasses.replace(msg, t_ns=9)
    assert out.t_ns == 9 and msg.t_ns == 5 and type(out) is EgoState
    for f in dataclasses.fields(EgoState):
        if f.name != "t_ns":
            np.testing.assert_array_equal(getattr(out, f.name), getattr(ref, f.name))


def test_fast_record_equals_the_constructor():
    # sync_step builds SyncRecords with tuple.__new__; a field added to SyncRecord must show up here.
    from fusion.sync import SyncRecord, _record
    assert SyncRecord._fields == ("now_ns", "stream", "t_ns", "decision")
    fast, ref = _record(7, "radar", 5, Decision.APPLIED), SyncRecord(7, "radar", 5, Decision.APPLIED)
    assert type(fast) is SyncRecord and fast == ref and hash(fast) == hash(ref) and repr(fast) == repr(ref)
    with pytest.raises(AttributeError):
        fast.t_ns = 0


def test_duplicate_memory_keeps_exactly_the_newest_released_keys():
    cfg = SyncConfig(streams={"lidar": StreamConfig(50 * MS, 0)}, duplicate_memory=3)
    state = SyncState()
    for k in range(40):  # each message released on arrival; the shared key log is compacted on the way
        state, _, _ = sync_step(state, [("lidar", Msg(k * MS))], (k + 50) * MS, cfg)
    assert state.released_keys == tuple((t * MS, "lidar") for t in (37, 38, 39))
    assert state.watermark_ns == 39 * MS
    decisions = []
    for t in (38, 36):  # 38 is remembered: a duplicate; 36 is forgotten: behind the watermark, late
        state, _, records = sync_step(state, [("lidar", Msg(t * MS))], 90 * MS, cfg)
        decisions += [r.decision for r in records if r.stream == "lidar" and r.t_ns == t * MS]
    assert decisions == [Decision.DROPPED_DUPLICATE, Decision.DROPPED_LATE]


def test_stepping_an_older_state_again_leaves_both_branches_intact():
    # Successive states share their released-key log; a second step from the same state must
    # neither see the first step's keys nor change what the first step's state remembers.
    base, _, _ = sync_step(SyncState(), [("lidar", Msg(10 * MS)), ("lidar", Msg(20 * MS))], 20 * MS, CFG)
    base, _, _ = sync_step(base, [], 110 * MS, CFG)  # releases 10
    a, released_a, _ = sync_step(base, [], 120 * MS, CFG)
    b, _, _ = sync_step(base, [("camera", Msg(15 * MS))], 114 * MS, CFG)
    b, released_b, _ = sync_step(b, [], 120 * MS, CFG)
    assert [r.msg.t_ns // MS for r in released_a] == [20]
    assert [r.msg.t_ns // MS for r in released_b] == [15, 20]
    assert base.released_keys == ((10 * MS, "lidar"),) and [e[0] for e in base.buffer] == [20 * MS]
    assert a.released_keys == ((10 * MS, "lidar"), (20 * MS, "lidar"))
    assert b.released_keys == ((10 * MS, "lidar"), (15 * MS, "camera"), (20 * MS, "lidar"))
    # camera 15 again: branch b released it (a duplicate), branch a never saw it (behind: late)
    _, _, records_a = sync_step(a, [("camera", Msg(15 * MS))], 121 * MS, CFG)
    _, _, records_b = sync_step(b, [("camera", Msg(15 * MS))], 121 * MS, CFG)
    assert [r.decision for r in records_a] == [Decision.DROPPED_LATE]
    assert [r.decision for r in records_b] == [Decision.DROPPED_DUPLICATE]
    assert a.released_keys == ((10 * MS, "lidar"), (20 * MS, "lidar"))


def test_numpy_integer_timestamps_give_integer_decision_times():
    state, released, records = sync_step(SyncState(), [("radar", Msg(np.int64(60 * MS))),
                                                       ("lidar", Msg(np.int64(5 * MS)))], 60 * MS, CFG)
    assert [(r.stream, type(r.t_ns), r.t_ns) for r in records] == [("lidar", int, 5 * MS)]  # 55 ms late
    state, released, records = sync_step(state, [], 200 * MS, CFG)
    assert [(r.stream, type(r.t_ns), r.t_ns) for r in records] == [("radar", int, 40 * MS)]
    assert type(released[0].msg.t_ns) is int and released[0].msg.t_ns == 40 * MS


def _reference_step(state, arrivals, now, cfg):
    """The synchroniser's rules written plainly (lists, linear scans, no shared structure): what
    sync_step's faster bookkeeping must reproduce decision for decision."""
    buffer, memory, watermark, last_now = state
    records, released = [], []
    if last_now is not None and now < last_now:
        records.append((now, "", -1, Decision.RESET))
        buffer, memory, watermark = [], [], None
    buffer, memory = list(buffer), list(memory)
    for stream, msg in arrivals:
        sc = cfg.streams[stream]
        t = int(msg.t_ns) + sc.clock_offset_ns
        behind = watermark is not None and t <= watermark
        if any(e[:2] == (t, stream) for e in buffer) or (behind and (t, stream) in memory):
            decision = Decision.DROPPED_DUPLICATE
        elif now - t > sc.latency_window_ns or (behind and t < watermark):
            decision = Decision.DROPPED_LATE
        elif t - now > cfg.future_tolerance_ns:
            decision = Decision.DROPPED_FUTURE
        else:
            buffer.append((t, stream, msg))
            buffer.sort(key=lambda e: e[:2])  # stable: equal keys keep their arrival order
            continue
        records.append((now, stream, t, decision))
    out = [e for e in buffer if e[0] <= now - cfg.max_window_ns]
    for t, stream, msg in out:
        released.append((stream, t, msg.payload))
        records.append((now, stream, t, Decision.APPLIED))
    if out:
        watermark = out[-1][0]
        memory = sorted(memory + [e[:2] for e in out])[-cfg.duplicate_memory:]
    buffer = buffer[len(out):]
    return (buffer, memory, watermark, now), released, records


@pytest.mark.parametrize("seed", range(40))
def test_random_schedules_match_the_reference_rules(seed):
    rng = np.random.default_rng(seed)
    cfg = SyncConfig(streams=CFG.streams, future_tolerance_ns=int(rng.choice([0, 10, 50])) * MS,
                     duplicate_memory=int(rng.choice([1, 2, 5, 256])))
    fast_states, ref_states = [SyncState()], [([], [], None, None)]
    now, sent = 0, []
    for step in range(150):
        now += int(rng.choice([0, 3, 7, 12])) * MS if rng.random() > 0.03 else -40 * MS
        arrivals = []
        for _ in range(int(rng.choice([0, 1, 1, 2, 4]))):
            stream = str(rng.choice(["lidar", "camera", "radar"]))
            t = now - int(rng.integers(-20, 120)) * MS
            if sent and rng.random() < 0.2:
                stream, t = sent[int(rng.integers(len(sent)))]  # a duplicate, or a forgotten key
            elif rng.random() < 0.1 and ref_states[-1][2] is not None:
                # a twin of the newest released time on the stack clock, from any stream
                t = ref_states[-1][2] - CFG.streams[stream].clock_offset_ns
            sent.append((stream, t))
            arrivals.append((stream, Msg(np.int64(t) if rng.random() < 0.2 else t, f"{stream}{t}{len(sent)}")))
        k = -1 if rng.random() > 0.05 else int(rng.integers(len(fast_states)))  # sometimes an older state
        fast, released, records = sync_step(fast_states[k], arrivals, now, cfg)
        ref, ref_released, ref_records = _reference_step(ref_states[k], arrivals, now, cfg)
        assert [(r.stream, r.msg.t_ns, r.msg.payload) for r in released] == ref_released
        assert [(r.now_ns, r.stream, r.t_ns, r.decision) for r in records] == ref_records
        assert fast.released_keys == tuple(ref[1]) and fast.watermark_ns == ref[2]
        assert [e[0] for e in fast.buffer] == [e[0] for e in ref[0]]
        fast_states.append(fast)
        ref_states.append(ref)
    for fast, ref in zip(fast_states, ref_states):  # stepping older states again changed none
        assert fast.released_keys == tuple(ref[1])
        assert [e[2].msg.payload for e in fast.buffer] == [e[2].payload for e in ref[0]]


def test_a_message_type_outside_core_messages_is_retimed_by_dataclasses_replace():
    # The fast copiers cover core.messages' types only; any other frozen dataclass still works.
    from fusion.sync import _RETIMERS, _retimed
    assert Msg not in _RETIMERS
    out = _retimed(Msg(5), 9)
    assert type(out) is Msg and out.t_ns == 9


def test_the_duplicate_memory_stays_bounded_and_holds_exactly_the_newest_keys():
    """The shared log drops its forgotten keys in batches (sync_step): over a long run it never
    holds more than the memory plus one batch plus a step's releases, and the remembered window
    is always exactly the newest ``duplicate_memory`` released keys."""
    memory = 64
    cfg = SyncConfig(streams=CFG.streams, duplicate_memory=memory)
    state, released = SyncState(), []
    longest = 0
    for k in range(3000):
        state, out, _ = sync_step(state, [(("lidar", "camera", "radar")[k % 3], Msg(k * MS))], k * MS, cfg)
        released += [(r.msg.t_ns, r.stream) for r in out]  # a released message carries the offset
        longest = max(longest, len(state.released_log))
        assert list(state.released_keys) == sorted(released)[-memory:]
    assert len(released) > 2900 and longest <= memory + memory // 8 + 3
