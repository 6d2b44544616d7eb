"""DenseNet-121 (Huang et al., 2016) as torchvision builds it.

Each dense layer sees the concatenation (`cat` along channels) of every earlier feature map of
its block and adds `growth_rate` channels: BN-ReLU-1x1 conv (to bn_size * growth_rate) then
BN-ReLU-3x3 conv. Transitions halve the channels (1x1 conv) and the resolution (2x2 average
pool). Names follow torchvision: `features.conv0`, `features.norm0`,
`features.denseblock1.denselayer1.norm1` ... `conv2`, `features.transition1.conv`,
`features.norm5`, `classifier`; initialisation too: convolutions He-normal over fan_in,
BatchNorm 1 and 0, the classifier's bias 0 (its weight PyTorch's default Linear init).

Parameter count with num_classes=1000: densenet121 7,978,856.
"""

from __future__ import annotations

from typing import Any

from tinygrad_edu import Tensor, cat, nn

from .init import constant_, kaiming_normal_
from .inputs import check_rgb_images
from .weights import check_no_weights


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3 on the concatenated earlier features."""

    def __init__(
        self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = cat(features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            x = x.dropout(self.drop_rate, self.training)
        return x


class DenseBlock(nn.Module):
    """`num_layers` dense layers named denselayer1..N; returns every feature map, joined."""

    def __init__(
        self,
        num_layers: int,
        num_input_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate
            )
            setattr(self, f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for _, layer in self.named_children():
            features.append(layer(features))
        return cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1-avgpool2x2 between dense blocks (names norm, relu, conv, pool)."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(num_input_features, num_output_features, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    """`DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
    bn_size=4, drop_rate=0, num_classes=1000)`.

    `forward(x)` takes (N, 3, H, W) with H, W >= 32 (224 standard) and returns logits.
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"DenseNet: num_classes must be >= 1, got {num_classes}")
        features = nn.Sequential()
        features.conv0 = nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False)
        features.norm0 = nn.BatchNorm2d(num_init_features)
        features.relu0 = nn.ReLU()
        features.pool0 = nn.MaxPool2d(3, 2, 1)
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, bn_size, growth_rate, drop_rate)
            setattr(features, f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                setattr(features, f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        features.norm5 = nn.BatchNorm2d(channels)
        self.features = features
        self.classifier = nn.Linear(channels, num_classes)
        for _, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                constant_(m.weight, 1.0)
                constant_(m.bias, 0.0)
            elif isinstance(m, nn.Linear):
                constant_(m.bias, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        check_rgb_images("DenseNet", x)
        out = self.features(x).relu().adaptive_avg_pool2d((1, 1))
        return self.classifier(out.flatten(1))


def densenet121(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> DenseNet:
    """DenseNet-121: growth rate 32, blocks (6, 12, 24, 16), 64 initial features."""
    check_no_weights("densenet121", weights)
    return DenseNet(32, (6, 12, 24, 16), 64, **kwargs)
