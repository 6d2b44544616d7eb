"""Import torchvision (CPU wheels without its C++ ops) for the tests that compare with it."""

from typing import Any

import pytest


def import_torchvision() -> tuple[Any, Any]:
    """(torch, torchvision), or skip the test when either is missing. torchvision's C++
    extension is not built for this torch, and importing it registers fake kernels for
    `torchvision::nms`/`qnms`, which needs their schemas: defining them first lets the
    pure-Python models import."""
    torch = pytest.importorskip("torch")
    for op in ("nms", "qnms"):
        try:
            torch.library.define(
                f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
            )
        except RuntimeError:  # already defined (by an earlier test, or a real build)
            pass
    torchvision = pytest.importorskip("torchvision")
    return torch, torchvision
