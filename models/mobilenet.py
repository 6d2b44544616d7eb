"""MobileNetV2 (Sandler et al., 2018) as torchvision builds it.

Inverted residual blocks: a 1x1 expansion (by t), a 3x3 depthwise convolution
(groups = channels) and a linear 1x1 projection, with a shortcut when the block keeps stride 1
and the channel count; ReLU6 activations. Names follow torchvision: `features.0.0` (conv),
`features.0.1` (BatchNorm), `features.1.conv.0.0` ... `features.18.0`, `classifier.1`; and
its initialisation: convolutions He-normal over fan_out with zero bias, BatchNorm 1 and 0,
Linear N(0, 0.01) with zero bias.

Parameter count with num_classes=1000, width_mult=1.0: mobilenet_v2 3,504,872.
"""

from __future__ import annotations

from typing import Any

from tinygrad_edu import Tensor, nn

from .init import constant_, kaiming_normal_, normal_
from .inputs import check_rgb_images
from .weights import check_no_weights

# (expansion t, output channels c, repeats n, first stride s) per stage, from the paper
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `v`."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(nn.Sequential):
    """conv (no bias, "same" padding for odd kernels) → BatchNorm → ReLU6 (names 0, 1, 2)."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False
            ),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1, unless t = 1) → depthwise 3x3 → project (1x1, no activation), + x when the
    shape is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """`MobileNetV2(num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2)`.

    `forward(x)` takes (N, 3, H, W) with H, W >= 32 (five stride-2 stages; 224 standard) and
    returns (N, num_classes) logits.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"MobileNetV2: num_classes must be >= 1, got {num_classes}")
        input_channel = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                layers.append(
                    InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t)
                )
                input_channel = output_channel
        layers.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes)
        )
        for _, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    constant_(m.bias, 0.0)
            elif isinstance(m, nn.BatchNorm2d):
                constant_(m.weight, 1.0)
                constant_(m.bias, 0.0)
            elif isinstance(m, nn.Linear):
                normal_(m.weight, 0.0, 0.01)
                constant_(m.bias, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        check_rgb_images("MobileNetV2", x)
        x = self.features(x).adaptive_avg_pool2d((1, 1))
        return self.classifier(x.flatten(1))


def mobilenet_v2(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2; kwargs go to `MobileNetV2` (num_classes, width_mult, ...)."""
    check_no_weights("mobilenet_v2", weights)
    return MobileNetV2(**kwargs)
