"""A message the synchroniser drops is of no use: stream health must not count it (safety/health.py
sync_dropped). Before, liveness and rate counted arrivals only, and a stream whose every message
fusion dropped stayed alive."""
from safety.health import HealthState, StreamSpec, observe, stream_alive, stream_rate_ok, sync_dropped

MS = 1_000_000
CAMERA = StreamSpec("camera", period_ns=50 * MS)  # max age 150 ms
FUSION_LAG_MS = 15  # fusion runs (and reports its drops) this long after each arrival


def _run(drop, until_ms=3000):
    """A 20 Hz camera, arriving 30 ms after capture; fusion reports the drops ``drop(capture_ms)``
    asks for FUSION_LAG_MS after the arrival. Returns {now_ms: alive} every 5 ms."""
    h, alive, pending = HealthState(), {}, []
    for now in range(0, until_ms, 5):
        if now % 50 == 30:  # an arrival: captured at now - 30
            h = observe(h, "camera", (now - 30) * MS, now * MS)
            if drop(now - 30):
                pending.append((now + FUSION_LAG_MS, now - 30))
        while pending and pending[0][0] <= now:
            _, t_ms = pending.pop(0)
            h = sync_dropped(h, CAMERA, t_ms * MS, now * MS)
        alive[now] = stream_alive(h, CAMERA, now * MS)
    return h, alive


def test_a_stream_whose_every_message_is_dropped_is_lost_and_stays_lost():
    h, alive = _run(lambda t: t >= 1000)
    assert all(alive[t] for t in range(0, 1000, 5))
    first_lost = min(t for t, ok in alive.items() if not ok)
    # The last usable message arrived at 980 ms; the drop of the message arriving at 1130 ms is known
    # at 1145 ms, when that one is withdrawn too.
    assert first_lost == 1145
    # No new arrival makes it look alive again while fusion keeps dropping: held out, not flapping.
    assert not any(alive[t] for t in range(first_lost, 3000, 5))
    s = h.streams["camera"]
    assert s.sync_dropped == 40 and s.held_out == 37 and s.accepted == 60


def test_the_stream_recovers_once_the_drops_have_stopped_for_its_max_age():
    _, alive = _run(lambda t: 1000 <= t < 2000)
    # The last drop (captured 1950 ms, arrived 1980 ms) is reported at 1995 ms: arrivals up to 2145 ms
    # are held out; the one at 2180 ms counts.
    assert not any(alive[t] for t in range(1145, 2180, 5))
    assert all(alive[t] for t in range(2180, 3000, 5))


def test_an_isolated_drop_loses_nothing_and_every_other_one_shows_in_the_rate():
    _, alive = _run(lambda t: t == 1000)
    assert all(alive.values())
    h, alive = _run(lambda t: t >= 1000 and t % 100 == 0)
    assert all(alive.values())  # a usable message every 100 ms is within the 150 ms age
    assert stream_rate_ok(_run(lambda t: False)[0], CAMERA, 2985 * MS)
    assert not stream_rate_ok(h, CAMERA, 2985 * MS)  # but half the rate is out of tolerance


def test_a_stream_dropped_from_its_first_message_is_lost_after_the_start_grace():
    _, alive = _run(lambda t: True, until_ms=1000)
    assert all(alive[t] for t in range(0, 155, 5))  # max age from the start: the first may be in flight
    assert not any(alive[t] for t in range(155, 1000, 5))
