"""Import torchvision for the tests (and bench/llvm.py's PyTorch twin of ResNet-18), or skip
cleanly when torch/torchvision are absent.

torchvision 0.28.0's PyPI wheel is built for CUDA; beside a CPU-only torch its C extension
does not load, and `import torchvision` then fails registering a fake kernel for
`torchvision::nms` ("operator torchvision::nms does not exist"). The classification models
are pure Python: declaring the two operator schemas torchvision's import looks up lets them
load. The schemas are declared only when the operators do not exist yet, so a torchvision
whose C extension did load (and defined them) is left alone.
"""

from __future__ import annotations

import sys
from types import ModuleType

NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def load_torchvision() -> ModuleType | None:
    """torchvision, importable beside a CPU-only torch; None when torch or torchvision is not
    installed."""
    try:
        import torch
    except ImportError:
        return None
    try:
        import torchvision
    except ModuleNotFoundError:
        return None
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
        _forget_partial_import()
        for op in ("nms", "qnms"):
            if not hasattr(torch.ops.torchvision, op):
                torch.library.define(f"torchvision::{op}", NMS_SCHEMA)
        import torchvision
    return torchvision


def import_torchvision() -> tuple[ModuleType, ModuleType]:
    """(torch, torchvision), or skip the calling test when either is not installed."""
    import pytest

    torch = pytest.importorskip("torch")
    torchvision = load_torchvision()
    if torchvision is None:
        pytest.skip("torchvision is not installed")
    return torch, torchvision


def _forget_partial_import() -> None:
    """Drop the half-imported torchvision modules so the next import starts afresh."""
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
