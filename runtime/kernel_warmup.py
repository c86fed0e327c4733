"""`python -m runtime.kernel_warmup`: compile every numba kernel of rtdrive ahead of the first run,
on all cores.

Kernels compile when their module is imported (core/jit.py: explicit signatures, ``cache=True``),
one after another: the first `rtdrive sim` after a clone spent over a minute compiling 83 of them
on one core before its first tick. setup.sh runs this instead (``--stamp``: only when a kernel
module, numba or Python changed since the last warm-up, clearing numba's cache first): the modules that define kernels are imported by a pool of worker processes, one
module per task, the slowest first (a module imported later finds the kernels of the modules it
imports in the cache, if another worker compiled them already). Each worker's compiled code lands in ``__pycache__`` beside its
module, where every later import loads it, whichever process compiled it.

Which modules define kernels is read from their source (a line starting ``@kernel(``), so a new
kernel module needs no registration here.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import version
from pathlib import Path

PACKAGES = ("core", "sim", "perception", "fusion", "planning", "control", "safety", "runtime")
# A scheduling hint, not a registry (a module missing here still compiles, only later): the
# slowest modules start first, as the longest tasks should on a pool. Measured 2026-11-28 on one
# core: fusion.quiet_frame 34 s (and 18 s more for the fusion kernels it imports), the two lattice
# modules 19 and 15 s; every other module under 10 s. Then modules many others import.
SLOWEST = ("fusion.quiet_frame", "planning.lattice_bounds", "planning.lattice_batch")
FOUNDATIONS = ("core.road_kernels", "sim.traffic_kernels")


def kernel_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, int]:
    """{module name: number of kernels} for every module under ``root``'s packages defining one."""
    found: dict[str, int] = {}
    for package in packages:
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


class WarmupError(RuntimeError):
    """A kernel module failed to import (or its worker died): names the module."""


def _import_timed(module: str) -> float:
    t0 = time.perf_counter()
    importlib.import_module(module)
    return time.perf_counter() - t0


def default_workers(n_modules: int) -> int:
    """One worker per core this process may run on (not os.cpu_count(): a container limited to 2 of
    a host's 64 cores would start 64 compilers), and no more than there are modules."""
    return max(1, min(n_modules, len(os.sched_getaffinity(0))))


def warm(root: Path, workers: int | None = None, out=sys.stderr, packages: tuple[str, ...] = PACKAGES) -> float:
    """Import every kernel module under ``root`` in ``workers`` processes (default:
    ``default_workers``); returns the wall time [s]. Raises WarmupError naming the first module
    whose import raised or whose worker died (a ProcessPoolExecutor reports a dead worker, where
    multiprocessing.Pool silently replaced it and waited for its task for ever)."""
    modules = kernel_modules(root, packages)
    order = import_order(modules)
    workers = default_workers(len(order)) if workers is None else workers
    print(f"kernels: compiling or loading {sum(modules.values())} numba kernels in {len(order)} modules "
          f"with {workers} processes", file=out, flush=True)
    t0 = time.perf_counter()
    # fork: the workers start from this small process (numba is not imported here) in no time.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        pending = {pool.submit(_import_timed, module): module for module in order}
        try:
            for done, future in enumerate(as_completed(pending), 1):
                module = pending[future]
                try:
                    seconds = future.result()
                except BrokenProcessPool as exc:
                    raise WarmupError(f"a worker died while compiling {module} (or a module beside it): {exc}") from exc
                except Exception as exc:
                    raise WarmupError(f"{module}: {type(exc).__name__}: {exc}") from exc
                print(f"  [{done}/{len(order)}] {module}: {modules[module]} kernels, {seconds:.1f} s",
                      file=out, flush=True)
        except WarmupError:
            for future in pending:
                future.cancel()
            raise
    wall = time.perf_counter() - t0
    print(f"kernels: ready in {wall:.1f} s", file=out, flush=True)
    return wall


def fingerprint(root: Path, modules: dict[str, int]) -> str:
    """What the compiled kernels depend on: every kernel module's source, numba's, llvmlite's and
    Python's versions."""
    digest = hashlib.sha256()
    for package in ("numba", "llvmlite"):
        digest.update(f"{package} {version(package)}\n".encode())
    digest.update(f"python {sys.version}\n".encode())
    for module in sorted(modules):
        digest.update(module.encode() + b"\n")
        digest.update((root / Path(*module.split("."))).with_suffix(".py").read_bytes())
    return digest.hexdigest()


def numba_cache_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    """numba's cache (index ``.nbi`` and machine code ``.nbc``) beside the packages' modules."""
    return sorted(p for package in packages for pattern in ("*.nbi", "*.nbc")
                  for p in (root / package).rglob(f"__pycache__/{pattern}"))


def warm_if_changed(root: Path, stamp: Path, workers: int | None = None, out=sys.stderr,
                    packages: tuple[str, ...] = PACKAGES) -> bool:
    """Warm up unless ``stamp`` holds the current ``fingerprint``; returns whether it warmed.

    When anything changed, numba's whole cache goes first: numba keys each module's cache on that
    module's own source, so a kernel that calls a kernel of another module would keep the callee's
    old machine code after only the callee's module changed. The stamp is written (atomically)
    only after a warm-up that succeeded, so a failed or interrupted one is redone next time."""
    modules = kernel_modules(root, packages)
    current = fingerprint(root, modules)
    if stamp.is_file() and stamp.read_text().strip() == current:
        print("kernels: compiled code up to date", file=out, flush=True)
        return False
    stale = numba_cache_files(root, packages)
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        print(f"kernels: kernel sources or numba changed: {len(stale)} cached files removed", file=out, flush=True)
    warm(root, workers, out, packages)
    partial = stamp.with_name(stamp.name + ".partial")
    partial.write_text(current + "\n")
    partial.replace(stamp)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.kernel_warmup", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: the cores this process may use)")
    parser.add_argument("--stamp", type=Path, default=None,
                        help="warm up only if the kernel sources or numba changed since the warm-up that wrote "
                             "this file (then clearing numba's cache first); without it, always warm up")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers: {args.workers}; at least 1")
    root = Path(__file__).resolve().parent.parent
    try:
        if args.stamp is None:
            warm(root, args.workers)
        else:
            warm_if_changed(root, args.stamp, args.workers)
    except WarmupError as exc:
        print(f"kernels: failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
