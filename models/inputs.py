"""The input check every torchvision-style CNN in `models/` makes before its forward."""

from __future__ import annotations

from tinygrad_edu import Tensor
from tinygrad_edu.errors import op_error


def check_rgb_images(model: str, x: Tensor, min_side: int = 32) -> None:
    """Raise, naming `model`, unless x is a batch of RGB images (N, 3, H, W) with H and W at
    least `min_side` (what the network's downsampling leaves a non-empty map for)."""
    if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[2:]) < min_side:
        raise op_error(
            model,
            f"expected images (N, 3, H, W) with H, W >= {min_side}",
            x.shape,
            "pass a batch of RGB NCHW images (unsqueeze(0) for one; 224x224 is standard)",
        )
