"""Models written in the tinygrad_edu DSL: logistic regression, MLP, AlexNet."""

from .alexnet import AlexNet
from .logistic_regression import LogisticRegression
from .mlp import MLP

__all__ = ["MLP", "AlexNet", "LogisticRegression"]
