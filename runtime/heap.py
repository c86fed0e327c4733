"""The garbage collector around a run: everything alive when the run starts stays out of its
collections.

A cyclic collection of the oldest generation walks every tracked object. Before a run that is
the whole program: modules, the ONNX sessions, the world, numba's type registries (about 220,000
objects in a full-stack run, 75,000 of them numba's), so a collection that lands in a stage paused
it for 45-90 ms (a fusion step of ~1 ms measured 92 ms in a 20 s cut_in run). Those objects live
as long as the run; ``gc.freeze()`` moves them to the permanent generation, so collections during
the run scan only what the run allocates. Collection stays on: cycles the run creates are still
freed. openpilot's real-time processes make the same choice with ``gc.disable()``, which also
gives up freeing cycles.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Collect once, then keep every object alive now out of collections until the block ends.
    Not re-entrant: the end of an inner block would unfreeze the outer block's objects too."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
