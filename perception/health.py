"""Per-detector health counters handed to the safety layer.

A frame is unhealthy when inference raised, produced a non-finite value, or overran its budget
(measured with the injected timer). Counters only grow; the state is replaced, never mutated.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

REASON_OK = ""
REASON_EXCEPTION = "exception"
REASON_NONFINITE = "non_finite_output"
REASON_OVERRUN = "overrun"
REASON_NO_MODEL = "no_model"


@dataclass(frozen=True, slots=True)
class DetectorHealth:
    frames: int = 0
    unhealthy_frames: int = 0
    exceptions: int = 0
    nonfinite_outputs: int = 0
    overruns: int = 0
    fallback_frames: int = 0  # frames answered by the classical path instead of the network
    nonfinite_points_removed: int = 0
    last_reason: str = REASON_OK
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        """Health of the most recent frame."""
        return self.last_reason == REASON_OK

    def after_frame(self, reason: str, *, error: str = "", removed_points: int = 0,
                    fallback: bool = False) -> "DetectorHealth":
        bad = reason != REASON_OK
        return replace(
            self, frames=self.frames + 1, unhealthy_frames=self.unhealthy_frames + int(bad),
            exceptions=self.exceptions + int(reason == REASON_EXCEPTION),
            nonfinite_outputs=self.nonfinite_outputs + int(reason == REASON_NONFINITE),
            overruns=self.overruns + int(reason == REASON_OVERRUN),
            fallback_frames=self.fallback_frames + int(fallback),
            nonfinite_points_removed=self.nonfinite_points_removed + int(removed_points),
            last_reason=reason, last_error=error)
