"""Ego sensors that fail while they still deliver: data the ego filter refuses, or innovations
too large for the noise the filter assumes.

Stream health (safety/health.py) sees a sensor that stops, repeats itself or sends malformed
data. An IMU, wheel or GNSS receiver that keeps delivering fresh, finite, wrong data shows only in
the ego filter's judgement of each message (fusion's ``EgoVerdict``). Two tests per stream:

* refused: the filter's gates refused ``max_refused`` of its last ``refusal_window`` judged
  messages. A wheel stuck at 0 while the car moves has every reading refused; a receiver at 4x its
  noise has 65% of its fixes refused.
* inconsistent: the normalised innovations squared (NIS) of its last ``consistency_window``
  messages that passed the gates sum past the ``consistency_probability`` quantile of the
  chi-square distribution with (window x degrees of freedom) degrees of freedom, the distribution
  that sum follows while the sensor's noise is what the filter assumes (Bar-Shalom's NIS test,
  over a sliding window), scaled by ``consistency_noise_factor`` squared: a sensor somewhat
  noisier than assumed (a receiver misreporting its sigma by 25%) is tolerated. A sensor gone
  noisy has most of its data pass the gates and pulls the estimate with each: an IMU at 50x its
  noise had 11% of its samples refused and put the car 0.63 m (RMS) off its lane centre in
  NOMINAL. Refused messages stay out of this sum: the refusal
  test counts them, and a multipath jump (rightly refused) would otherwise count twice.

A stream found either way stays lost for the rest of the run: the stack quarantines it (judged,
never applied). Without it the filter dead-reckons, its gates widen with its covariance, and the
same faulty data then pass them: released on that evidence, one noisy GNSS fix pulled the estimate
1.6 m off and the car left the road.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol

from scipy.stats import chi2

from safety.monitor import SafetyConfig


class Verdict(Protocol):
    """What this module reads of fusion's EgoVerdict."""
    stream: str
    refused: bool
    nis: float  # NaN where no innovation was judged
    dof: int


def nis_window_limit(dof: int, cfg: SafetyConfig) -> float:
    """The largest NIS sum over ``cfg.consistency_window`` messages of ``dof`` degrees of freedom
    each that the test accepts: the chi-square quantile (via the survival function: exact for p
    near 1) of a sensor ``cfg.consistency_noise_factor`` times noisier than the filter assumes
    (its NIS scales with the square of that factor)."""
    quantile = float(chi2.isf(1.0 - cfg.consistency_probability, dof * cfg.consistency_window))
    return cfg.consistency_noise_factor**2 * quantile


@dataclass(frozen=True, slots=True)
class EgoStreamWatch:
    # Per stream, its last refusal_window verdicts (True: refused), oldest first.
    refusals: Mapping[str, tuple[bool, ...]] = field(default_factory=dict)
    # Per stream, the NIS of its last consistency_window messages that passed the gates.
    nis: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    # The NIS sum limit per degrees of freedom (nis_window_limit), fixed at the start of a run.
    nis_limits: Mapping[int, float] = field(default_factory=dict)
    refused: frozenset[str] = frozenset()
    inconsistent: frozenset[str] = frozenset()

    @staticmethod
    def start(cfg: SafetyConfig) -> "EgoStreamWatch":
        """A watch for a run under ``cfg``: no verdicts yet, the limits of the 1-dof (IMU yaw rate,
        wheel speed) and 2-dof (GNSS position) innovations computed once."""
        limits = {dof: nis_window_limit(dof, cfg) for dof in (1, 2)} if cfg.consistency_window > 0 else {}
        return EgoStreamWatch(nis_limits=limits)

    @property
    def quarantined(self) -> frozenset[str]:
        return self.refused | self.inconsistent


def judge_ego_streams(watch: EgoStreamWatch, verdicts: Iterable[Verdict], cfg: SafetyConfig) -> EgoStreamWatch:
    """The watch after ``verdicts`` (in the order fusion judged the messages). A stream already
    lost is no longer watched."""
    refusals, nis = watch.refusals, watch.nis
    refused, inconsistent = watch.refused, watch.inconsistent
    copied = False
    for v in verdicts:
        stream = v.stream
        if stream in refused or stream in inconsistent:
            continue
        if not copied:  # the watch is immutable: new maps, made at the first verdict only
            refusals, nis, copied = dict(refusals), dict(nis), True
        if cfg.max_refused > 0:
            window = (refusals.get(stream, ()) + (v.refused,))[-cfg.refusal_window:]
            refusals[stream] = window
            if v.refused and sum(window) >= cfg.max_refused:
                refused = refused | {stream}
                continue
        # NaN: the fix that started the filter judged no innovation.
        if cfg.consistency_window > 0 and not v.refused and not math.isnan(v.nis):
            window = (nis.get(stream, ()) + (float(v.nis),))[-cfg.consistency_window:]
            nis[stream] = window
            if len(window) == cfg.consistency_window and sum(window) > watch.nis_limits[v.dof]:
                inconsistent = inconsistent | {stream}
    if not copied:
        return watch
    return EgoStreamWatch(refusals, nis, watch.nis_limits, refused, inconsistent)
