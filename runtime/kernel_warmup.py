"""`python -m runtime.kernel_warmup`: compile every numba kernel of rtdrive ahead of the first run,
on all cores.

Kernels compile when their module is imported (core/jit.py: explicit signatures, ``cache=True``),
one after another: the first `rtdrive sim` after a clone spent over a minute compiling 83 of them
on one core before its first tick. setup.sh runs this instead, once after a clone or a change to a
kernel module: the modules that define kernels are imported by a pool of worker processes, one
module per task, the slowest first (a module imported later finds the kernels of the modules it
imports in the cache, if another worker compiled them already). Each worker's compiled code lands in ``__pycache__`` beside its
module, where every later import loads it, whichever process compiled it.

Which modules define kernels is read from their source (a line starting ``@kernel(``), so a new
kernel module needs no registration here.
"""
from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

PACKAGES = ("core", "sim", "perception", "fusion", "planning", "control", "safety", "runtime")
# A scheduling hint, not a registry (a module missing here still compiles, only later): the
# slowest modules start first, as the longest tasks should on a pool. Measured 2026-11-28 on one
# core: fusion.quiet_frame 34 s (and 18 s more for the fusion kernels it imports), the two lattice
# modules 19 and 15 s; every other module under 10 s. Then modules many others import.
SLOWEST = ("fusion.quiet_frame", "planning.lattice_bounds", "planning.lattice_batch")
FOUNDATIONS = ("core.road", "sim.traffic_kernels")


def kernel_modules(root: Path) -> dict[str, int]:
    """{module name: number of kernels} for every module under ``root``'s packages defining one."""
    found: dict[str, int] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            count = sum(1 for line in path.read_text().splitlines() if line.lstrip().startswith("@kernel("))
            if count:
                found[".".join(path.relative_to(root).with_suffix("").parts)] = count
    return found


def import_order(modules: dict[str, int]) -> list[str]:
    """The slowest modules, then foundations, then the rest with the most kernels first."""
    first = [m for m in SLOWEST + FOUNDATIONS if m in modules]
    rest = sorted((m for m in modules if m not in first), key=lambda m: (-modules[m], m))
    return first + rest


def _import_timed(module: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    importlib.import_module(module)
    return module, time.perf_counter() - t0


def warm(root: Path, workers: int, out=sys.stderr) -> float:
    """Import every kernel module in ``workers`` processes; returns the wall time [s]."""
    modules = kernel_modules(root)
    order = import_order(modules)
    print(f"kernels: compiling or loading {sum(modules.values())} numba kernels in {len(order)} modules "
          f"with {workers} processes", file=out, flush=True)
    t0 = time.perf_counter()
    # fork: the workers start from this small process (numba is not imported here) in no time.
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, (module, seconds) in enumerate(pool.imap_unordered(_import_timed, order, chunksize=1), 1):
            print(f"  [{done}/{len(order)}] {module}: {modules[module]} kernels, {seconds:.1f} s",
                  file=out, flush=True)
    wall = time.perf_counter() - t0
    print(f"kernels: ready in {wall:.1f} s", file=out, flush=True)
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.kernel_warmup", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the machine's cores)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers: {args.workers}; at least 1")
    warm(Path(__file__).resolve().parent.parent, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
