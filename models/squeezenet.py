"""SqueezeNet 1.1 (Iandola et al., 2016) as torchvision builds it.

Fire modules squeeze to a few channels with a 1x1 convolution, then expand with parallel 1x1
and 3x3 convolutions whose outputs are joined (`cat` along channels). Max-pools use
`ceil_mode=True` as torchvision's do. The classifier is a 1x1 convolution to the classes,
ReLU and global average pooling: no Linear layer. Names follow torchvision: `features.0`
(conv), `features.3.squeeze`, `.expand1x1`, `.expand3x3`, `classifier.1` (the final conv);
initialisation too: the final conv N(0, 0.01), the others He-uniform over fan_in, biases 0.

Parameter count with num_classes=1000: squeezenet1_1 1,235,496.
"""

from __future__ import annotations

from typing import Any

from tinygrad_edu import Tensor, cat, nn

from .init import constant_, kaiming_uniform_, normal_
from .inputs import check_rgb_images
from .weights import check_no_weights


class Fire(nn.Module):
    """squeeze 1x1 → ReLU → [expand 1x1 → ReLU, expand 3x3 → ReLU] joined along channels."""

    def __init__(
        self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int
    ) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return cat(
            [
                self.expand1x1_activation(self.expand1x1(x)),
                self.expand3x3_activation(self.expand3x3(x)),
            ],
            1,
        )


class SqueezeNet(nn.Module):
    """`SqueezeNet(version="1_1", num_classes=1000, dropout=0.5)` (only 1.1 is built here).

    `forward(x)` takes (N, 3, H, W) with H, W >= 32 (224 standard) and returns logits.
    """

    def __init__(self, version: str = "1_1", num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        if version != "1_1":
            raise ValueError(f"SqueezeNet: only version '1_1' is available, got {version!r}")
        if num_classes < 1:
            raise ValueError(f"SqueezeNet: num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1))
        )
        for _, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    normal_(m.weight, 0.0, 0.01)
                else:
                    kaiming_uniform_(m.weight)
                if m.bias is not None:
                    constant_(m.bias, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        check_rgb_images("SqueezeNet", x)
        return self.classifier(self.features(x)).flatten(1)


def squeezenet1_1(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.1; kwargs go to `SqueezeNet` (num_classes, dropout)."""
    check_no_weights("squeezenet1_1", weights)
    return SqueezeNet("1_1", **kwargs)
