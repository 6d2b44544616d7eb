"""The one random number generator behind `Tensor.randn/rand`, dropout and initialisation.

`manual_seed(seed)` makes every random draw in tinygrad_edu reproducible; it is a
`numpy.random.Generator` (PCG64), so a seed gives the same stream on every platform.

Data-parallel training draws per-sample numbers (dropout masks) through `batch_shard`: inside
it, a draw whose first axis is this rank's shard of the global batch draws the whole global
batch's numbers and keeps the shard's rows. Every rank then advances the generator exactly as
one process training on the global batch does, and the W shards together get that process's
masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_generator = np.random.default_rng(0)
_shard: tuple[int, int, int] | None = None  # (lo, hi, global rows) inside batch_shard


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the global generator to `seed` and return it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    """The global generator (use it to draw your own reproducible numbers)."""
    return _generator


def get_state() -> dict:
    """The generator's state, for checkpoints that resume bit-identically."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state returned by `get_state`."""
    _generator.bit_generator.state = state


@contextmanager
def batch_shard(lo: int, hi: int, total: int) -> Iterator[None]:
    """Within the block, this process holds rows [lo, hi) of a `total`-row global batch: see
    `uniform`."""
    global _shard
    previous, _shard = _shard, (int(lo), int(hi), int(total))
    try:
        yield
    finally:
        _shard = previous


def uniform(shape: tuple[int, ...]) -> np.ndarray:
    """Uniform [0, 1) float64 numbers of `shape` from the global generator. Inside
    `batch_shard(lo, hi, total)`, a shape whose first axis is the shard's hi - lo rows is
    drawn as (total, ...) and rows [lo, hi) returned (the same numbers one process draws
    for the global batch)."""
    shape = tuple(shape)
    if _shard is not None and shape and shape[0] == _shard[1] - _shard[0]:
        lo, hi, total = _shard
        return _generator.random((total, *shape[1:]))[lo:hi]
    return _generator.random(shape)


@contextmanager
def using(gen: np.random.Generator) -> Iterator[np.random.Generator]:
    """Within the block, `gen` is the global generator; the previous one (and its state) is
    back afterwards. `DataLoader` runs each dataset sample under a generator derived from
    (seed, epoch, index), so a dataset's random transforms are reproducible whatever the
    number of worker processes, and training's own draws (dropout) are left alone."""
    global _generator
    previous, _generator = _generator, gen
    try:
        yield gen
    finally:
        _generator = previous
