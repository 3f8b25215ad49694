"""Vectorised, deterministic identifiers in Zuora's formats."""

from __future__ import annotations

import numpy as np
import polars as pl

_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


class IdFactory:
    """32-hex-character ids (``2c92a0ff5a840412015aa3cde86f2ba6``) from one seeded stream.

    Zuora ids are opaque; random 128-bit values make collisions practically impossible, and
    one generator per dataset keeps them reproducible for a seed."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def new(self, n: int) -> pl.Series:
        if n == 0:
            return pl.Series([], dtype=pl.String)
        raw = self.rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        hexed = _HEX[raw].view("S32").ravel()
        return pl.Series(hexed.astype("U32"), dtype=pl.String)


def numbered(prefix: str, start: int, n: int, width: int = 8) -> pl.Series:
    """``A-S00000001``-style natural keys: ``prefix`` + zero-padded sequence from ``start``."""
    seq = pl.Series(np.arange(start, start + n, dtype=np.int64)).cast(pl.String)
    return pl.select(pl.lit(prefix) + seq.str.zfill(width)).to_series().alias("n")
