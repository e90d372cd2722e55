"""Named random streams from one scenario seed.

Each stream is its own `numpy.random.Generator`, keyed by a stable name (crc32, never
`hash()`), so adding a service does not shift the draws of another and the same seed gives
the same results byte for byte.
"""

from __future__ import annotations

import zlib

import numpy as np


class Streams:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._made: dict[str, np.random.Generator] = {}

    def __call__(self, name: str) -> np.random.Generator:
        g = self._made.get(name)
        if g is None:
            key = zlib.crc32(name.encode())
            g = self._made[name] = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(key,))))
        return g
