"""The `weights=` argument of torchvision's model functions, which this project cannot honour:
there is nothing to download from, so pretrained weights come in through `load_state_dict`."""

from __future__ import annotations

from typing import Any


def check_no_weights(name: str, weights: Any) -> None:
    """torchvision's `weights=` downloads pretrained weights; here there is nothing to
    download from, so only None is accepted, with the way to load converted weights."""
    if weights is not None:
        raise ValueError(
            f"{name}: weights={weights!r} is not available (nothing is downloaded). Fix: build "
            f"{name}() and load_state_dict({{k: v.numpy() for k, v in "
            f"torchvision.models.{name}(weights=...).state_dict().items()}})"
        )
