"""`tinygrad_edu.nn.parameter.Parameter`: where PyTorch code finds `nn.Parameter` too."""

from . import Parameter

__all__ = ["Parameter"]
