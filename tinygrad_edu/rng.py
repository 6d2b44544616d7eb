"""The one random number generator behind `Tensor.randn/rand`, dropout and initialisation.

`manual_seed(seed)` makes every random draw in tinygrad_edu reproducible; it is a
`numpy.random.Generator` (PCG64), so a seed gives the same stream on every platform.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


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
