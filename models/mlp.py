"""Multi-layer perceptron: Linear layers with ReLU or sigmoid between them."""

from __future__ import annotations

from collections.abc import Sequence

from tinygrad_edu import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class MLP(nn.Module):
    """`MLP([64, 128, 64, 10])`: Linear(64,128) act Linear(128,64) act Linear(64,10).

    Parameters are named `layers.0.weight`, `layers.2.weight`, ... (a Sequential)."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"MLP: need at least input and output sizes, got {list(sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MLP: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.sizes = list(sizes)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))
