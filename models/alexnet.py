"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in the DSL, in three variants.

- `"paper"`: the 2012 network on 227x227 crops. conv1 96@11x11/4 → ReLU → LRN → max-pool 3/2 →
  conv2 256@5x5 pad 2, groups 2 (the two GPU towers) → ReLU → LRN → pool → conv3 384@3x3 (both
  towers) → conv4 384@3x3 g2 → conv5 256@3x3 g2 → pool → dropout → FC 4096 → dropout → FC 4096 →
  FC classes. LRN as the paper writes it, b = a / (k + α·Σa²)^β over 5 channels with k=2,
  α=1e-4, β=0.75; the torch-style `local_response_norm` divides α by the window size, so it is
  given α·5. Initialisation from the paper: weights N(0, 0.01); biases 1 in conv2, conv4, conv5
  and the hidden FC layers, 0 elsewhere.
- `"torchvision"`: the single-tower 64/192/384/256/256 layout on 224x224 with adaptive average
  pooling to 6x6; names and shapes identical to `torchvision.models.alexnet`, so its weights
  load with `load_state_dict`.
- `"mini"`: the paper's layer types in the paper's order with fewer channels (24/64/96/96/64,
  FC 256) for 32x32 inputs (digits upscaled), He-initialised; trains in about a minute on a
  laptop CPU.

Parameter counts (num_classes=1000): paper 60,965,224; torchvision 61,100,840.
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu import Tensor, nn, rng
from tinygrad_edu.errors import op_error

PAPER_LRN = dict(size=5, alpha=1e-4 * 5, beta=0.75, k=2.0)
VARIANTS = ("paper", "torchvision", "mini")


def _paper_layers(
    c: tuple[int, ...], fc: int, num_classes: int, conv1: dict, pool_out: int, in_channels: int
) -> tuple[nn.Sequential, nn.Sequential]:
    features = nn.Sequential(
        nn.Conv2d(in_channels, c[0], **conv1),
        nn.ReLU(),
        nn.LocalResponseNorm(**PAPER_LRN),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2, groups=2),
        nn.ReLU(),
        nn.LocalResponseNorm(**PAPER_LRN),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1, groups=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(c[4] * pool_out * pool_out, fc),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(fc, fc),
        nn.ReLU(),
        nn.Linear(fc, num_classes),
    )
    return features, classifier


def _paper_init(features: nn.Sequential, classifier: nn.Sequential) -> None:
    """N(0, 0.01) weights; biases 1 in conv2, conv4, conv5 and the hidden FC layers."""
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in classifier if isinstance(m, nn.Linear)]
    ones = {id(convs[1]), id(convs[3]), id(convs[4]), id(fcs[0]), id(fcs[1])}
    g = rng.generator()
    for layer in convs + fcs:
        layer.weight.data[...] = g.normal(0.0, 0.01, layer.weight.shape)
        layer.bias.data[...] = 1.0 if id(layer) in ones else 0.0


def _he_init(features: nn.Sequential, classifier: nn.Sequential) -> None:
    """He-normal weights, zero biases: at this width N(0, 0.01) and biases of 1 leave the
    signal too small (or the first logits too large) for SGD to start."""
    g = rng.generator()
    for layer in [*features, *classifier]:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            fan_in = int(np.prod(layer.weight.shape[1:]))
            layer.weight.data[...] = g.normal(0.0, np.sqrt(2.0 / fan_in), layer.weight.shape)
            layer.bias.data[...] = 0.0


class AlexNet(nn.Module):
    """`AlexNet(num_classes=1000, variant="paper" | "torchvision" | "mini")`.

    `forward(x)` takes (N, 3, S, S) with S = 227 (paper), 32 (mini), or at least 63
    (torchvision; 224 is standard) and returns (N, num_classes) logits.
    """

    def __init__(
        self, num_classes: int = 1000, variant: str = "paper", in_channels: int = 3
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"AlexNet: variant must be one of {VARIANTS}, got {variant!r}")
        if num_classes < 1:
            raise ValueError(f"AlexNet: num_classes must be >= 1, got {num_classes}")
        self.variant, self.num_classes, self.in_channels = variant, num_classes, in_channels
        if variant == "paper":
            self.image_size = 227
            self.features, self.classifier = _paper_layers(
                (96, 256, 384, 384, 256),
                4096,
                num_classes,
                dict(kernel_size=11, stride=4),
                6,
                in_channels,
            )
            _paper_init(self.features, self.classifier)
        elif variant == "mini":
            self.image_size = 32
            self.features, self.classifier = _paper_layers(
                (24, 64, 96, 96, 64),
                256,
                num_classes,
                dict(kernel_size=5, padding=2),
                3,
                in_channels,
            )
            _he_init(self.features, self.classifier)
        else:
            self.image_size = 224
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 64, 11, stride=4, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(256, 256, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(3, 2),
            )
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(0.5),
                nn.Linear(256 * 6 * 6, 4096),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(),
                nn.Linear(4096, num_classes),
            )

    def _check_input(self, x: Tensor) -> None:
        want = f"(N, {self.in_channels}, {self.image_size}, {self.image_size})"
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise op_error(
                f"AlexNet[{self.variant}]",
                f"expected input {want}",
                x.shape,
                "pass a batch of NCHW images (unsqueeze(0) for one image; GrayToRGB for grayscale)",
            )
        h, w = x.shape[2:]
        ok = (h >= 63 and w >= 63) if self.variant == "torchvision" else (h == w == self.image_size)
        if not ok:
            size = ">= 63 (224 standard)" if self.variant == "torchvision" else self.image_size
            raise op_error(
                f"AlexNet[{self.variant}]",
                f"expected images of size {size}",
                x.shape,
                f"resize/crop to {want} (the paper crops 227 from 256)",
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        h = self.features(x)
        if self.variant == "torchvision":
            h = self.avgpool(h)
        return self.classifier(h.flatten(1))
