"""VGG-11 and VGG-16 with batch norm (Simonyan & Zisserman, 2014), as torchvision builds them.

`vgg11_bn(num_classes=1000)` and `vgg16_bn` have torchvision's modules and names:
`features.N` (conv, BatchNorm, ReLU per layer, a 2x2 max-pool for each "M"), `avgpool`
(adaptive to 7x7) and `classifier.N` (Linear 25088→4096, ReLU, Dropout, Linear 4096→4096,
ReLU, Dropout, Linear → classes), so torchvision's state_dict loads one-to-one; and its
initialisation: convolutions He-normal over fan_out with zero bias, BatchNorm 1 and 0,
Linear N(0, 0.01) with zero bias.

Parameter counts with num_classes=1000: vgg11_bn 132,868,840; vgg16_bn 138,365,992.
"""

from __future__ import annotations

from typing import Any

from tinygrad_edu import Tensor, nn

from .init import constant_, kaiming_normal_, normal_
from .inputs import check_rgb_images
from .weights import check_no_weights

# channel counts per convolution, "M" a 2x2 max-pool: torchvision's configurations A and D
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_layers(config: list[int | str], batch_norm: bool = False) -> nn.Sequential:
    """The convolutional trunk: 3x3 convolutions (padding 1), each followed by BatchNorm
    (when asked) and ReLU; 2x2 max-pools at the "M"s."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        assert isinstance(v, int)
        layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """`VGG(features, num_classes=1000, init_weights=True, dropout=0.5)`.

    `forward(x)` takes (N, 3, H, W) with H, W >= 32 (five 2x2 pools; 224 is standard) and
    returns (N, num_classes) logits.
    """

    def __init__(
        self,
        features: nn.Sequential,
        num_classes: int = 1000,
        init_weights: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"VGG: num_classes must be >= 1, got {num_classes}")
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for _, m in self.named_modules():
                if isinstance(m, nn.Conv2d):
                    kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        constant_(m.bias, 0.0)
                elif isinstance(m, nn.BatchNorm2d):
                    constant_(m.weight, 1.0)
                    constant_(m.bias, 0.0)
                elif isinstance(m, nn.Linear):
                    normal_(m.weight, 0.0, 0.01)
                    constant_(m.bias, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        check_rgb_images("VGG", x)
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg11_bn(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> VGG:
    """VGG-11 (configuration A) with batch norm; kwargs go to `VGG` (num_classes, ...)."""
    check_no_weights("vgg11_bn", weights)
    return VGG(make_layers(CONFIGS["A"], batch_norm=True), **kwargs)


def vgg16_bn(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> VGG:
    """VGG-16 (configuration D) with batch norm."""
    check_no_weights("vgg16_bn", weights)
    return VGG(make_layers(CONFIGS["D"], batch_norm=True), **kwargs)
