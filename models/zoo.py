"""The torchvision classic CNNs by torchvision's function name, for the command lines
(`python -m models.train resnet18`, `python -m compiler inspect resnet18`) and the tests."""

from __future__ import annotations

from collections.abc import Callable

from tinygrad_edu import nn

from .densenet import densenet121
from .mobilenet import mobilenet_v2
from .resnet import resnet18, resnet34, resnet50
from .squeezenet import squeezenet1_1
from .vgg import vgg11_bn, vgg16_bn

# name -> constructor taking num_classes=...; every model takes (N, 3, H, W), H, W >= 32
MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "vgg11_bn": vgg11_bn,
    "vgg16_bn": vgg16_bn,
    "squeezenet1_1": squeezenet1_1,
    "mobilenet_v2": mobilenet_v2,
    "densenet121": densenet121,
}
