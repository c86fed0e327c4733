"""User-facing errors of the runtime: reported as one line, exit code 2, no traceback."""
from __future__ import annotations

# The longest closed-loop run the commands accept: a run keeps its trajectory, timing and
# synchroniser records in memory for its summary.
MAX_RUN_DURATION_S = 3600.0


class UsageError(Exception):
    """Bad usage or an impossible combination of options."""


def check_run_options(duration_s: float | None = None, seed: int = 0, threads: int = 1) -> None:
    """The closed-loop options that `rtdrive sim`, `rtdrive timing` and `rtdrive snapshot` share,
    checked in one place so that each command refuses them alike. ``duration_s`` None: the
    scenario's own."""
    if duration_s is not None and not (0.0 < duration_s <= MAX_RUN_DURATION_S):
        raise UsageError(f"--duration: {duration_s} is out of range; allowed (0, {MAX_RUN_DURATION_S:g}] seconds")
    if seed < 0:  # the world's and numpy's generators take no negative seed
        raise UsageError(f"--seed: {seed} is out of range; allowed >= 0")
    if threads < 1:
        raise UsageError(f"--threads: {threads} is out of range; allowed >= 1")
