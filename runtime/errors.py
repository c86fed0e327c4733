"""User-facing errors of the runtime: reported as one line, exit code 2, no traceback; and the
warnings a run goes on after, one line each on stderr."""
from __future__ import annotations

import sys
from pathlib import Path

# The longest closed-loop run the commands accept: a run keeps its trajectory, timing and
# synchroniser records in memory for its summary.
MAX_RUN_DURATION_S = 3600.0
# The most threads a --threads option accepts. A fixed bound, not os.cpu_count(): a command line (or
# a recorded run's options) must mean the same on every host, and oversubscribing a small host is a
# legitimate timing experiment. The value is per model (onnxruntime intra-op) or per trainer (torch);
# a run holds a session per model, so 64 already allows a few hundred threads, while an unbounded
# value let `--threads 100000` spawn thousands of threads and gigabytes of stacks.
MAX_THREADS = 64


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
    check_threads(threads)


def warn_late_faults(command: str, scenario, duration_s: float | None) -> None:
    """One warning line on stderr per fault of ``scenario`` (its file's ``faults``) that starts at
    or after the end of a ``duration_s`` run (None: the scenario's own duration); the run goes on
    without it. Every command that runs a scenario for a --duration calls this one function, so
    that each says it alike. A malformed fault raises FaultSpecError, as the run itself would."""
    from sim.faults import late_fault_notes
    end_s = scenario.duration_s if duration_s is None else duration_s
    for note in late_fault_notes(scenario.faults, end_s):
        print(f"rtdrive {command}: warning: scenario {scenario.name}: {note}", file=sys.stderr)


def check_threads(threads: int, option: str = "--threads") -> None:
    if not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"{option}: {threads} is out of range; allowed 1..{MAX_THREADS}")


def check_frames_per_seed(frames: int, option: str = "--frames-per-seed") -> None:
    if frames < 1:
        raise UsageError(f"{option}: {frames} is out of range; allowed >= 1")


def check_output_paths(files: dict[str, Path | None] | None = None,
                       folders: dict[str, Path | None] | None = None) -> None:
    """Output options, checked before a run so that a bad path does not cost the run: ``files``
    and ``folders`` map an option to its path (None: not given). An existing file is overwritten
    and an existing folder written into, as every output option of the CLI does; a file option
    naming a folder, a folder option naming a file, or a path below a file is refused."""
    for option, path, want_dir in ([(o, p, False) for o, p in (files or {}).items()]
                                   + [(o, p, True) for o, p in (folders or {}).items()]):
        if path is None:
            continue
        path = Path(path)
        if path.exists() and path.is_dir() != want_dir:
            raise UsageError(f"{option} {path}: " + ("exists and is not a folder" if want_dir
                                                     else "is a folder; give a file name"))
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UsageError(f"{option} {path}: {blocker} is a file, not a folder")
