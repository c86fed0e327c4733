"""Standard normal draws taken from a Generator in blocks, handed out a few at a time.

The oracle ego stream draws six normals per message (50 Hz); a Generator call costs a few
microseconds in the closed loop however few values it draws, most of the message's cost. A
Generator's normals carry nothing from one call to the next (numpy's ziggurat keeps no spare value,
unlike the legacy RandomState's Box-Muller), so one call for a block of B k-value requests gives the
very values, in the same order, that B calls of k would: the requests see the same numbers for one
generator call per block. The generator must feed nothing else, as its state runs ahead of the
requests by up to a block.
"""
from __future__ import annotations

import numpy as np

DEFAULT_BLOCK = 768  # values per generator call: 128 oracle ego messages of six draws


class NormalDraws:
    """The standard normal stream of ``rng`` (``rng.normal(0.0, 1.0, k)`` call after call), drawn
    ``block`` values at a time. Owns the generator: nothing else may draw from it."""

    def __init__(self, rng: np.random.Generator, block: int = DEFAULT_BLOCK) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"NormalDraws needs a numpy Generator, got {type(rng).__name__}")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive integer, got {block!r}")
        self._rng, self._block = rng, block
        self._values = np.empty(0)
        self._next = 0

    def take(self, k: int) -> np.ndarray:
        """The stream's next ``k`` values (a read-only view: the block is shared by the requests)."""
        start = self._next
        end = start + k
        if end > self._values.shape[0]:
            # The values left over come first, then a new block: the stream's order is kept.
            fresh = self._rng.normal(0.0, 1.0, max(self._block, k))
            values = np.concatenate((self._values[start:], fresh)) if start < self._values.shape[0] else fresh
            values.flags.writeable = False
            self._values, start, end = values, 0, k
        self._next = end
        return self._values[start:end]
