"""A stream whose first message the synchroniser drops keeps its start-up grace: it is judged as if
that message had never arrived (safety/health.py sync_dropped). Before, the drop found no usable
message left and held the stream's arrivals out for its maximum age, as for a stream that had
delivered and then gone silent: the next good messages were not counted and the stream was judged
lost right after the grace."""
import pytest

from safety.health import HealthState, StreamSpec, observe, stream_alive, stream_rate_ok, sync_dropped

MS = 1_000_000
CAMERA = StreamSpec("camera", period_ns=50 * MS)  # max age 150 ms: the grace after the start


def _judged(arrivals_ms, dropped_ms, lag_ms, until_ms=1000):
    """A 20 Hz camera whose captures arrive 30 ms later, at ``arrivals_ms``; fusion reports the drop
    of each arrival in ``dropped_ms`` ``lag_ms`` after it. Returns the stream's state and
    {now_ms: (alive, rate_ok)} every 5 ms."""
    h, judged, pending = HealthState(), {}, []
    for now in range(0, until_ms, 5):
        if now in arrivals_ms:
            h = observe(h, "camera", (now - 30) * MS, now * MS)
            if now in dropped_ms:
                pending.append((now + lag_ms, now - 30))
        while pending and pending[0][0] <= now:
            _, t_ms = pending.pop(0)
            h = sync_dropped(h, CAMERA, t_ms * MS, now * MS)
        judged[now] = (stream_alive(h, CAMERA, now * MS), stream_rate_ok(h, CAMERA, now * MS))
    return h, judged


# Lags: reported before the next arrival (15 ms), and after it (60 ms). First arrivals: early in
# the grace, and late in it with the next one still inside it (arrivals every 50 ms, grace 150 ms).
@pytest.mark.parametrize("lag_ms", [15, 60])
@pytest.mark.parametrize("first_ms", [30, 100])
def test_a_dropped_first_message_is_judged_as_if_it_had_never_arrived(lag_ms, first_ms):
    arrivals = set(range(first_ms, 1000, 50))
    h, with_drop = _judged(arrivals, {first_ms}, lag_ms)
    _, without = _judged(arrivals - {first_ms}, set(), lag_ms)
    assert with_drop == without
    assert all(alive for alive, _ in with_drop.values())  # a good message every 50 ms from the second on
    s = h.streams["camera"]
    # The next good messages counted; before, those up to 165 + lag ms were held out.
    assert s.sync_dropped == 1 and s.held_out == 0 and s.accepted == len(arrivals)


def test_a_stream_dropped_from_its_first_message_is_still_held_out_after_the_grace():
    """The hold-out is not lost with the fix: once the grace is over without a usable message and
    drops keep coming, a new arrival cannot make the stream look alive before fusion drops it too."""
    arrivals = set(range(30, 1000, 50))
    h, judged = _judged(arrivals, arrivals, 15)
    assert all(judged[t][0] for t in range(0, 155, 5))
    assert not any(judged[t][0] for t in range(155, 1000, 5))
    assert h.streams["camera"].held_out == len(arrivals) - 3  # all but the three inside the grace
