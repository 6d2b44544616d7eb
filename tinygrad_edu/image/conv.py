"""conv_transpose2d (conv2d's input gradient given an output shape) and conv1d (conv2d on an
(N, C, 1, L) view): no new primitive, so their VJPs and kernels are conv2d's."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..errors import op_error
from ..tensor import Tensor, _pair

# ---------------------------------------------------------------------------------------------
# transposed convolution: the adjoint of conv2d (the conv2d_grad_input primitive), given an
# output shape
# ---------------------------------------------------------------------------------------------


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """torch.nn.functional.conv_transpose2d: weight (C_in, C_out / groups, kH, kW); output
    side (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1.

    It is conv2d's input gradient with `x` as the output gradient, so its VJP, compiled
    kernels and CUDA source are conv2d's."""
    op = "conv_transpose2d"
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: weight must be a Tensor, got {type(weight).__name__}")
    if x.ndim == 3:
        return conv_transpose2d(
            x.unsqueeze(0), weight, bias, stride, padding, output_padding, groups, dilation
        )[0]
    shapes = f"input {x.shape}, weight {weight.shape}"
    if x.ndim != 4 or weight.ndim != 4:
        raise op_error(
            op,
            "input must be (N, C_in, H, W) and weight (C_in, C_out/groups, kH, kW)",
            shapes,
            "add a batch dim with unsqueeze(0); weight is laid out in-channels first",
        )
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise op_error(op, f"groups must be a positive int, got {groups!r}", shapes, "groups=1")
    groups = int(groups)
    if weight.shape[0] % groups:
        raise op_error(
            op,
            f"weight's {weight.shape[0]} in-channels do not divide into groups={groups}",
            shapes,
            "pick groups dividing in_channels",
        )
    if x.shape[1] != weight.shape[0]:
        raise op_error(
            op,
            f"input has {x.shape[1]} channels but weight expects {weight.shape[0]}",
            shapes,
            "weight.shape[0] must equal the input's channels (C_in, C_out/groups, kH, kW)",
        )
    s = _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    extra = _pair(output_padding, "output_padding", op)
    if min(s) < 1 or min(d) < 1 or min(p) < 0 or min(extra) < 0:
        raise op_error(
            op,
            f"stride {s} and dilation {d} must be >= 1, padding {p} and output_padding "
            f"{extra} >= 0",
            shapes,
            "pass non-negative paddings and positive strides/dilations",
        )
    if any(extra[i] >= max(s[i], d[i]) for i in range(2)):
        raise op_error(
            op,
            f"output_padding {extra} must be smaller than stride {s} or dilation {d}",
            shapes,
            "use output_padding < stride (it only picks among the sizes a stride rounds)",
        )
    kernel = weight.shape[2:]
    out_hw = tuple(
        (x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (kernel[i] - 1) + extra[i] + 1
        for i in range(2)
    )
    if min(out_hw) < 1:
        raise op_error(
            op,
            f"the output would be {out_hw}",
            shapes,
            "use less padding or a larger input",
        )
    c_out = weight.shape[1] * groups
    # conv2d over the output shape has x.shape[2:] + output_padding // stride windows: the
    # rows past the input are zero windows (output_padding >= stride only with dilation)
    more = (extra[0] // s[0], extra[1] // s[1])
    g = x
    if more != (0, 0):
        g = x._call(ops.PAD, pads=((0, 0), (0, 0), (0, more[0]), (0, more[1])), value=0.0)
    out = g.conv2d_grad_input(weight, (x.shape[0], c_out, *out_hw), s, p, d, groups)
    if bias is None:
        return out
    if bias.shape != (c_out,):
        raise op_error(
            op,
            "bias must have one entry per output channel",
            f"bias {bias.shape}, weight {weight.shape}",
            f"pass a bias of shape ({c_out},)",
        )
    return out + bias.reshape(1, -1, 1, 1)


# ---------------------------------------------------------------------------------------------
# conv1d: conv2d on an (N, C, 1, L) view
# ---------------------------------------------------------------------------------------------


def _one(value: Any, name: str) -> int:
    """A 1-D conv argument: an int or a 1-tuple."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise op_error(
            "conv1d", f"{name} must be an int or a 1-tuple, got {value!r}", (), f"{name}=1"
        )
    return int(value)


def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """torch.nn.functional.conv1d: input (N, C, L) or (C, L), weight (O, C/groups, K);
    padding an int, 'valid' or 'same'. The conv2d primitive on H = 1."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"conv1d: weight must be a Tensor, got {type(weight).__name__}")
    if x.ndim == 2:
        return conv1d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups)[0]
    if x.ndim != 3 or weight.ndim != 3:
        raise op_error(
            "conv1d",
            "input must be (N, C, L) and weight (O, C/groups, K)",
            f"input {x.shape}, weight {weight.shape}",
            "add a batch dim with unsqueeze(0); for images use conv2d",
        )
    if (
        not isinstance(groups, (int, np.integer))
        or groups < 1
        or x.shape[1] != weight.shape[1] * int(groups)
        or weight.shape[0] % int(groups)
    ):
        raise op_error(
            "conv1d",
            f"input channels {x.shape[1]} must equal weight.shape[1] x groups ({groups}), and "
            "groups divide the output channels",
            f"input {x.shape}, weight {weight.shape}",
            "weight is (out_channels, in_channels / groups, kernel_size)",
        )
    pad: Any = padding if isinstance(padding, str) else (0, _one(padding, "padding"))
    out = x.unsqueeze(2).conv2d(
        weight.unsqueeze(2),
        None,
        (1, _one(stride, "stride")),
        pad,
        (1, _one(dilation, "dilation")),
        groups,
    )
    out = out.squeeze(2)
    if bias is None:
        return out
    if bias.shape != (weight.shape[0],):
        raise op_error(
            "conv1d",
            "bias must have one entry per output channel",
            f"bias {bias.shape}, weight {weight.shape}",
            f"pass a bias of shape ({weight.shape[0]},)",
        )
    return out + bias.reshape(1, -1, 1)
