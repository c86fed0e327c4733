"""The ego-stream watch: refusals over a window, and the NIS window test for a sensor whose data
pass the gates but are noisier than the ego filter assumes."""
import math
from typing import NamedTuple

import numpy as np
import pytest

from safety.ego_streams import EgoStreamWatch, judge_ego_streams, nis_window_limit
from safety.monitor import SafetyConfig


class V(NamedTuple):
    stream: str
    refused: bool
    nis: float
    dof: int


def _judge(cfg, verdicts, watch=None):
    watch = watch if watch is not None else EgoStreamWatch.start(cfg)
    for v in verdicts:
        watch = judge_ego_streams(watch, (v,), cfg)
    return watch


def test_the_window_limit_of_one_two_dof_message_is_the_closed_form_quantile():
    # chi-square with 2 degrees of freedom: P(X > x) = exp(-x / 2), so the quantile is -2 ln(1 - p).
    cfg = SafetyConfig(consistency_window=1, consistency_probability=0.999, consistency_noise_factor=1.0)
    assert nis_window_limit(2, cfg) == pytest.approx(-2.0 * math.log(0.001), rel=1e-12)
    # A sensor allowed to be 1.25x noisier than assumed has NIS 1.5625x as large.
    looser = SafetyConfig(consistency_window=1, consistency_probability=0.999, consistency_noise_factor=1.25)
    assert nis_window_limit(2, looser) == pytest.approx(1.5625 * -2.0 * math.log(0.001), rel=1e-12)


def test_a_receiver_a_little_noisier_than_it_reports_is_tolerated():
    # 1.3x its reported sigma (NIS 1.69x): common in real receivers, no reason for a minimal-risk stop.
    rng = np.random.default_rng(3)
    verdicts = [V("gnss", False, float(x), 2) for x in 1.69 * rng.chisquare(2, 20_000)]
    assert _judge(SafetyConfig(), verdicts).inconsistent == frozenset()
    # The plain chi-square test (no allowance) fails it.
    assert _judge(SafetyConfig(consistency_noise_factor=1.0), verdicts).inconsistent == frozenset({"gnss"})


def test_five_refusals_in_ten_lose_a_stream_four_do_not():
    cfg = SafetyConfig()  # max_refused 5 of refusal_window 10
    four = [V("wheel", k % 2 == 0 and k < 8, 0.5, 1) for k in range(10)]
    assert _judge(cfg, four).refused == frozenset()
    five = four[:9] + [V("wheel", True, math.nan, 1)]
    watch = _judge(cfg, five)
    assert watch.refused == frozenset({"wheel"}) and watch.quarantined == frozenset({"wheel"})


def test_innovations_that_match_the_assumed_noise_never_fail_the_test():
    cfg = SafetyConfig()
    rng = np.random.default_rng(7)
    # 20,000 IMU samples and 2,000 GNSS fixes (200 s at their rates), exactly as noisy as assumed.
    verdicts = [V("imu", False, float(x), 1) for x in rng.chisquare(1, 20_000)]
    verdicts += [V("gnss", False, float(x), 2) for x in rng.chisquare(2, 2_000)]
    watch = _judge(cfg, verdicts)
    assert watch.inconsistent == frozenset() and watch.refused == frozenset()


def test_a_receiver_at_two_and_a_half_times_its_noise_fails_within_its_first_window():
    cfg = SafetyConfig()
    rng = np.random.default_rng(7)
    nis = 2.5**2 * rng.chisquare(2, 40)
    watch = EgoStreamWatch.start(cfg)
    flagged_at = None
    for k, x in enumerate(nis):
        watch = judge_ego_streams(watch, (V("gnss", False, float(x), 2),), cfg)
        if watch.inconsistent and flagged_at is None:
            flagged_at = k
    assert flagged_at == cfg.consistency_window - 1  # the first full window already fails
    assert watch.inconsistent == frozenset({"gnss"}) and watch.quarantined == frozenset({"gnss"})


def test_refused_messages_and_undefined_nis_stay_out_of_the_sum():
    cfg = SafetyConfig(max_refused=0, consistency_window=4)  # refusals not watched here
    limit = nis_window_limit(1, cfg)
    huge = V("imu", True, 1e9, 1)  # refused: the refusal test's business
    started = V("imu", False, math.nan, 1)  # a fix that started the filter judged no innovation
    watch = _judge(cfg, [huge, started] * 10 + [V("imu", False, 1.0, 1)] * 4)
    assert watch.nis["imu"] == (1.0,) * 4 and watch.inconsistent == frozenset()
    assert 4.0 < limit  # so the test above is meaningful: four unit NIS pass, 1e9 would not


def test_a_lost_stream_is_no_longer_watched_and_the_old_watch_is_unchanged():
    cfg = SafetyConfig(consistency_window=2)
    before = _judge(cfg, [V("gnss", False, 1.0, 2)])
    after = _judge(cfg, [V("gnss", False, 1e6, 2)], before)
    assert after.inconsistent == frozenset({"gnss"})
    assert before.inconsistent == frozenset() and before.nis["gnss"] == (1.0,)
    later = judge_ego_streams(after, (V("gnss", False, 1.0, 2),), cfg)
    assert later is after  # nothing judged: the stream is lost for the run


def test_a_window_of_zero_turns_the_test_off():
    cfg = SafetyConfig(consistency_window=0)
    watch = _judge(cfg, [V("gnss", False, 1e6, 2)] * 50)
    assert watch.inconsistent == frozenset() and watch.nis_limits == {}
