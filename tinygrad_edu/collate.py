"""`default_collate`: a list of samples -> one batch, as PyTorch's `default_collate` does it,
with numpy arrays in place of tensors.

A sample is a numpy array, a number, a string, or a tuple / list / dict of those (nested
freely). The batch has the sample's structure with each leaf stacked along a new first axis:
arrays by `np.stack` (all the same shape and dtype), Python ints as int64, floats as float64,
bools as bool, numpy scalars as their dtype; strings stay a list. So a dataset returning
`(image CHW float32, label int)` gives batches `(xb (B, C, H, W) float32, yb (B,) int64)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import op_error

__all__ = ["default_collate"]


def default_collate(samples: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch (see the module docstring)."""
    if len(samples) == 0:
        raise op_error("default_collate", "no samples", "[]", "pass at least one sample")
    first = samples[0]
    if isinstance(first, np.ndarray):
        return _stack_arrays(samples)
    if isinstance(first, bool | np.bool_):
        return np.array(samples, dtype=bool)
    if isinstance(first, int | np.integer):
        return np.array(samples, dtype=first.dtype if isinstance(first, np.integer) else np.int64)
    if isinstance(first, float | np.floating):
        dtype = first.dtype if isinstance(first, np.floating) else np.float64
        return np.array(samples, dtype=dtype)
    if isinstance(first, str | bytes):
        return list(samples)
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, tuple | list):
        lengths = {len(s) for s in samples}
        if len(lengths) != 1:
            raise op_error(
                "default_collate",
                "every sample must have the same number of fields",
                f"lengths {sorted(lengths)}",
                "return the same tuple structure from every __getitem__",
            )
        fields = [default_collate(list(column)) for column in zip(*samples)]
        return tuple(fields) if isinstance(first, tuple) else fields
    if hasattr(first, "getbands"):  # a PIL image: the transform stopped before the array
        raise op_error(
            "default_collate",
            "cannot stack PIL images into a batch",
            f"sample of type {type(first).__name__} mode {first.mode!r} size {first.size}",
            "end the dataset's transform with ToCHWFloat() (and Normalize) so samples are "
            "CHW float32 arrays",
        )
    raise op_error(
        "default_collate",
        f"does not know how to batch a {type(first).__name__}",
        repr(first)[:80],
        "return numpy arrays / numbers (in tuples, lists or dicts), or pass collate_fn=",
    )


def _stack_arrays(samples: Sequence[Any]) -> np.ndarray:
    shapes = {np.shape(s) for s in samples}
    if len(shapes) != 1:
        raise op_error(
            "default_collate",
            "the samples' arrays have different shapes, so they cannot be stacked",
            f"shapes {sorted(shapes)[:4]}",
            "resize / crop every image to one size in the transform (e.g. ResizeShorter(256) "
            "then CenterCrop(224) or RandomCrop(224))",
        )
    return np.stack(samples)
