"""Loss modules under PyTorch's names: each holds its options and calls the functional form
in `tinygrad_edu.functional` (one definition of each loss)."""

from __future__ import annotations

from typing import Any

from .. import functional as F  # noqa: N812 (PyTorch's alias)
from ..tensor import Tensor
from . import Module


class CrossEntropyLoss(Module):
    """`F.cross_entropy(input, target)` with the options given here (PyTorch's
    nn.CrossEntropyLoss; options the DSL does not support yet are refused by name)."""

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002 (PyTorch's name)
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(Module):
    """`F.mse_loss(input, target, reduction)` (PyTorch's nn.MSELoss)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


__all__ = ["CrossEntropyLoss", "MSELoss"]
