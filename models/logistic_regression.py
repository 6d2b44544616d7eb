"""Multinomial logistic regression: one linear layer, softmax in the loss."""

from __future__ import annotations

from tinygrad_edu import Tensor, nn


class LogisticRegression(nn.Module):
    """logits = flatten(x) Wᵀ + b; train with `cross_entropy` (softmax + NLL)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))
