"""Models written in the tinygrad_edu DSL: logistic regression, MLP, AlexNet, and torchvision's
classic CNNs under torchvision's function names (resnet18/34/50, vgg11_bn, vgg16_bn,
squeezenet1_1, mobilenet_v2, densenet121) with torchvision's state_dict keys."""

from .alexnet import AlexNet
from .densenet import DenseNet, densenet121
from .logistic_regression import LogisticRegression
from .mlp import MLP
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18, resnet34, resnet50
from .squeezenet import SqueezeNet, squeezenet1_1
from .vgg import VGG, vgg11_bn, vgg16_bn

__all__ = [
    "MLP", "AlexNet", "DenseNet", "LogisticRegression", "MobileNetV2", "ResNet", "SqueezeNet",
    "VGG", "densenet121", "mobilenet_v2", "resnet18", "resnet34", "resnet50", "squeezenet1_1",
    "vgg11_bn", "vgg16_bn",
]  # fmt: skip
