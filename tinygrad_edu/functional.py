"""The functional API under `torch.nn.functional`'s names and signatures.

`import tinygrad_edu.functional as F` (or `tinygrad_edu.nn.functional`), then `F.relu(x)`,
`F.cross_entropy(logits, y, label_smoothing=0.1)`, `F.conv2d(x, w, b, padding=1)` read as
they do in PyTorch. Each function is a thin wrapper over a `Tensor` method, so the op itself
is defined once (in `ops.py` or as a composite in `tensor.py`) and eager, compiled and CUDA
runs agree. Arguments PyTorch keeps only for old code (`inplace`, `size_average`, `reduce`,
`_stacklevel`) are accepted; `inplace=True` returns a new tensor (the DSL has no in-place ops).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from . import image, losses
from .autograd import note_write, tracing
from .errors import op_error
from .tensor import Tensor


def _tensor(x: Any, op: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{op}: input must be a Tensor, got {type(x).__name__}. Fix: wrap it as Tensor(x)"
        )
    return x


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "relu").relu()


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "relu6").relu6()


def hardtanh(
    input: Tensor,
    min_val: float = -1.0,
    max_val: float = 1.0,
    inplace: bool = False,
) -> Tensor:
    return _tensor(input, "hardtanh").hardtanh(min_val, max_val)


def leaky_relu(
    input: Tensor,
    negative_slope: float = 0.01,
    inplace: bool = False,
) -> Tensor:
    return _tensor(input, "leaky_relu").leaky_relu(negative_slope)


def sigmoid(input: Tensor) -> Tensor:
    return _tensor(input, "sigmoid").sigmoid()


def tanh(input: Tensor) -> Tensor:
    return _tensor(input, "tanh").tanh()


def softmax(
    input: Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> Tensor:
    x = _tensor(input, "softmax")
    x = x if dtype is None else x.cast(dtype)
    return x.softmax(dim=_implicit_dim(x, dim, "softmax"))


def log_softmax(
    input: Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> Tensor:
    x = _tensor(input, "log_softmax")
    x = x if dtype is None else x.cast(dtype)
    return x.log_softmax(dim=_implicit_dim(x, dim, "log_softmax"))


def softmin(
    input: Tensor,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> Tensor:
    x = _tensor(input, "softmin")
    x = x if dtype is None else x.cast(dtype)
    return x.softmin(dim=_implicit_dim(x, dim, "softmin"))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    return _tensor(input, "gelu").gelu(approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "silu").silu()


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "hardswish").hardswish()


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "hardsigmoid").hardsigmoid()


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _tensor(input, "elu").elu(alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "selu").selu()


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _tensor(input, "celu").celu(alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return _tensor(input, "softplus").softplus(beta, threshold)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return _tensor(input, "mish").mish()


def logsigmoid(input: Tensor) -> Tensor:
    return _tensor(input, "logsigmoid").logsigmoid()


def softsign(input: Tensor) -> Tensor:
    return _tensor(input, "softsign").softsign()


def tanhshrink(input: Tensor) -> Tensor:
    return _tensor(input, "tanhshrink").tanhshrink()


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return _tensor(input, "hardshrink").hardshrink(lambd)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return _tensor(input, "softshrink").softshrink(lambd)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    return _tensor(input, "threshold").threshold(threshold, value)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    return _tensor(input, "prelu").prelu(weight)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), a and b the two halves of `input` along `dim`."""
    x = _tensor(input, "glu")
    d = x._dim(dim, "glu")
    if x.shape[d] % 2:
        raise op_error(
            "glu",
            f"dim {d} has odd length {x.shape[d]}",
            x.shape,
            "split along a dim of even length",
        )
    a, b = x.chunk(2, d)
    return a * b.sigmoid()


def _implicit_dim(x: Tensor, dim: int | None, op: str) -> int:
    """PyTorch's legacy choice for dim=None (0 for 0-, 1- and 3-D inputs, else 1), with the
    same warning PyTorch gives, since the guess is easy to get wrong."""
    if dim is not None:
        return dim
    chosen = 0 if x.ndim in (0, 1, 3) else 1
    warnings.warn(
        f"{op}: implicit dim is deprecated; chose dim={chosen} for a {x.ndim}-D input. "
        f"Fix: pass dim= explicitly",
        UserWarning,
        stacklevel=3,
    )
    return chosen


# ---------------------------------------------------------------------------------------------
# losses (definitions in `losses.py`; size_average/reduce are PyTorch's deprecated spellings)
# ---------------------------------------------------------------------------------------------
def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    return losses.legacy_reduction(size_average, reduce, reduction)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    return losses.cross_entropy(
        _tensor(input, "cross_entropy"),
        target,
        weight,
        ignore_index,
        _reduction(size_average, reduce, reduction),
        label_smoothing,
    )


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    return losses.nll_loss(
        _tensor(input, "nll_loss"),
        target,
        weight,
        ignore_index,
        _reduction(size_average, reduce, reduction),
    )


def mse_loss(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    return losses.mse_loss(_tensor(input, "mse_loss"), target, reduction, weight)


def l1_loss(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    return losses.l1_loss(_tensor(input, "l1_loss"), target, reduction, weight)


def smooth_l1_loss(
    input: Tensor,
    target: Any,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    return losses.smooth_l1_loss(_tensor(input, "smooth_l1_loss"), target, reduction, beta)


def huber_loss(
    input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0, weight: Any = None
) -> Tensor:
    return losses.huber_loss(_tensor(input, "huber_loss"), target, reduction, delta, weight)


def binary_cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor(input, "binary_cross_entropy")
    return losses.binary_cross_entropy(x, target, weight, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor(input, "binary_cross_entropy_with_logits")
    return losses.binary_cross_entropy_with_logits(x, target, weight, reduction, pos_weight)


# ---------------------------------------------------------------------------------------------
# math on tensors
# ---------------------------------------------------------------------------------------------
def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """`torch.clamp` (also `torch.clip`)."""
    return _tensor(input, "clamp").clamp(min, max)


clip = clamp


# ---------------------------------------------------------------------------------------------
# layers: linear, convolution, pooling, dropout, one_hot
# ---------------------------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return _tensor(input, "linear").linear(weight, bias)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    return _tensor(input, "conv2d").conv2d(weight, bias, stride, padding, dilation, groups)


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling; (values, int64 flat indices) with `return_indices=True`."""
    return _tensor(input, "max_pool2d").max_pool2d(
        kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Average pooling with PyTorch's ceil_mode, count_include_pad and divisor_override."""
    return _tensor(input, "avg_pool2d").avg_pool2d(
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Transposed convolution, weight (C_in, C_out / groups, kH, kW)."""
    return image.conv_transpose2d(
        input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def interpolate(
    input: Tensor,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize (N, C, L) or (N, C, H, W): 'nearest', 'nearest-exact', 'linear', 'bilinear',
    'area'."""
    return image.interpolate(
        input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias
    )


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad by (left, right, top, bottom, ...), last dim first: 'constant', 'reflect',
    'replicate', 'circular'."""
    return image.pad(input, pad, mode, value)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution, input (N, C, L), weight (O, C / groups, K)."""
    return image.conv1d(input, weight, bias, stride, padding, dilation, groups)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Adaptive max pooling; (values, int64 flat indices) with `return_indices=True`."""
    return image.adaptive_max_pool2d(input, output_size, return_indices)


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    return _tensor(input, "adaptive_avg_pool2d").adaptive_avg_pool2d(output_size)


def dropout(
    input: Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Inverted dropout; identity when `training` is False (pass `self.training`)."""
    return _tensor(input, "dropout").dropout(p, training)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-05,
) -> Tensor:
    """Normalise over every dim but the channel dim 1. Training uses the batch's statistics
    and updates the running ones in place (eagerly; nn.BatchNorm2d also compiles that);
    evaluation uses the running statistics."""
    x = _tensor(input, "batch_norm")
    if x.ndim < 2:
        raise op_error("batch_norm", "input must be (N, C, ...)", x.shape, "add a batch dim")
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    for role, t in (("running_mean", running_mean), ("running_var", running_var)):
        _per_channel("batch_norm", role, t, x)
    for role, t in (("weight", weight), ("bias", bias)):
        _per_channel("batch_norm", role, t, x)
    if training:
        count = x.size // x.shape[1]
        if count < 2:
            raise op_error(
                "batch_norm",
                "training needs more than 1 value per channel",
                x.shape,
                "use a larger batch, or training=False",
            )
        mean = x.mean(axes, keepdim=True)
        var = x.var(axes, keepdim=True, correction=0)
        _update_running(running_mean, mean, momentum)
        _update_running(running_var, var * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise op_error(
                "batch_norm",
                "evaluation needs running_mean and running_var",
                x.shape,
                "pass them, or training=True",
            )
        mean = running_mean.reshape(shape).cast(x.dtype)
        var = running_var.reshape(shape).cast(x.dtype)
    return _affine((x - mean) / (var + eps).sqrt(), weight, bias, shape)


def _per_channel(op: str, role: str, t: Any, x: Tensor) -> None:
    """A clear error where a per-channel tensor of a norm is not one value per channel."""
    if t is None:
        return
    shape = tuple(t.shape if hasattr(t, "shape") else np.shape(t))
    if math.prod(shape) != x.shape[1]:
        raise op_error(
            op,
            f"{role} must have one value per channel (C = {x.shape[1]})",
            f"input {x.shape}, {role} {shape}",
            f"pass a {role} of shape ({x.shape[1]},), or check which dim holds the channels",
        )


def _update_running(stat: Tensor | None, batch: Tensor, momentum: float) -> None:
    if stat is None:
        return
    if tracing():
        raise op_error(
            "batch_norm",
            "updating running statistics in place cannot be compiled",
            stat.shape,
            "use nn.BatchNorm2d, whose updates compile",
        )
    fresh = batch.detach().numpy().reshape(stat.shape).astype(stat.dtype)
    stat.data[...] = stat.numpy() * (1 - momentum) + fresh * momentum
    note_write(stat.data)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot rows as `F.one_hot` gives; num_classes=-1 means max label + 1."""
    labels = _tensor(tensor, "one_hot")
    if num_classes == -1:
        if labels.size == 0:
            raise op_error(
                "one_hot",
                "cannot infer num_classes from an empty tensor",
                labels.shape,
                "pass num_classes",
            )
        num_classes = int(labels.numpy().max()) + 1
    return labels.one_hot(num_classes, dtype="int64")


def normalize(
    input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None
) -> Tensor:
    """input / max(||input||_p over dim, eps), as `F.normalize` (`out` is not supported)."""
    if out is not None:
        raise op_error("normalize", "out= is not supported", (), "use the returned tensor")
    x = _tensor(input, "normalize")
    # `norm`: p=0 counts the non-zero entries, as torch.linalg.vector_norm's; its gradient
    # at a zero vector is 0, so a zero row's is 1/eps, as PyTorch's (not NaN from sqrt's)
    return x / x.norm(p, dim, keepdim=True).maximum(eps)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """softmax(Q K^T * scale + mask) V over the last two dims, as `F.scaled_dot_product_attention`:
    scale 1/sqrt(E) by default; a bool `attn_mask` keeps where True, a float one is added;
    `is_causal` keeps j <= i; `enable_gqa` repeats key/value heads (dim -3) to the query's."""
    from .tensor import where

    q, k, v = (_tensor(t, "scaled_dot_product_attention") for t in (query, key, value))
    if is_causal and attn_mask is not None:
        raise op_error(
            "scaled_dot_product_attention",
            "is_causal and attn_mask are exclusive",
            f"attn_mask {getattr(attn_mask, 'shape', None)}",
            "fold the causal mask into attn_mask (tril), or drop one",
        )
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[-1] != k.shape[-1]:
        raise op_error(
            "scaled_dot_product_attention",
            "query, key and value must have the same rank (>= 2) and query and key the same "
            "last dim",
            f"query {q.shape}, key {k.shape}, value {v.shape}",
            "pass (..., L, E), (..., S, E) and (..., S, Ev)",
        )
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], -3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], -3)
    factor = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * factor
    if is_causal:
        keep = np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool))
        scores = where(Tensor._make(keep), scores, -np.inf)
    if attn_mask is not None:
        m = _tensor(attn_mask, "scaled_dot_product_attention")
        scores = where(m, scores, -np.inf) if m.dtype == np.bool_ else scores + m
    weights = scores.softmax(-1)
    if dropout_p > 0:
        weights = weights.dropout(dropout_p)
    return weights @ v


# ---------------------------------------------------------------------------------------------
# normalisation over features (per example): layer and group norm
# ---------------------------------------------------------------------------------------------
def _affine(
    y: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]
) -> Tensor:
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _standardize(x: Tensor, axes: tuple[int, ...], eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over `axes`, with the biased variance (as every
    PyTorch normalisation layer)."""
    mean = x.mean(axes, keepdim=True)
    return (x - mean) / (x.var(axes, keepdim=True, correction=0) + eps).sqrt()


def layer_norm(
    input: Tensor,  # noqa: A002 (PyTorch's name)
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-05,
) -> Tensor:
    """Normalise over the last len(normalized_shape) dims (biased variance, as PyTorch),
    then scale by `weight` and shift by `bias` (each of `normalized_shape`)."""
    x = _tensor(input, "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or tuple(x.shape[x.ndim - k :]) != shape or x.ndim < k:
        raise op_error(
            "layer_norm",
            f"normalized_shape {shape} must be the input's last {k} dims",
            x.shape,
            f"pass normalized_shape={tuple(x.shape[-1:])} (the feature dims)",
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise op_error(
                "layer_norm", f"{name} must have shape {shape}", p.shape, "match normalized_shape"
            )
    return _affine(_standardize(x, tuple(range(x.ndim - k, x.ndim)), eps), weight, bias, shape)


def group_norm(
    input: Tensor,  # noqa: A002 (PyTorch's name)
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-05,
) -> Tensor:
    """Split the channels (dim 1) of an (N, C, ...) input into `num_groups` groups and
    normalise each group of each example over its channels and positions (biased variance);
    then a per-channel `weight` and `bias`. Batch-size independent, unlike batch_norm."""
    x = _tensor(input, "group_norm")
    if x.ndim < 2 or num_groups < 1 or x.shape[1] % num_groups:
        raise op_error(
            "group_norm",
            f"the channel count (dim 1) must be divisible by num_groups={num_groups}",
            x.shape,
            "pass an (N, C, ...) input and a num_groups that divides C",
        )
    n, c = x.shape[0], x.shape[1]
    y = _standardize(x.reshape(n, num_groups, -1), (2,), eps).reshape(x.shape)
    return _affine(y, weight, bias, (1, c) + (1,) * (x.ndim - 2))


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-08) -> Tensor:
    """(x1 / max(|x1|, eps)) . (x2 / max(|x2|, eps)) along `dim`, x1 and x2 broadcast
    first, as PyTorch computes it: a zero vector gives 0 and finite gradients (its norm's
    gradient there is 0, see `Tensor.norm`)."""
    a, b = _tensor(x1, "cosine_similarity"), _tensor(x2, "cosine_similarity")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise op_error(
            "cosine_similarity",
            "x1 and x2 cannot be broadcast together",
            (a.shape, b.shape),
            "pass tensors of one shape, or shapes that broadcast (1 where they differ)",
        ) from None
    a, b = a.expand(*shape), b.expand(*shape)
    a = a / a.norm(2, dim, keepdim=True).clamp(min=eps)
    b = b / b.norm(2, dim, keepdim=True).clamp(min=eps)
    return (a * b).sum(dim)


# ---------------------------------------------------------------------------------------------
# more of torch.nn.functional for image networks: channel dropout, instance norm, pixel
# shuffles, 1-d pools, embeddings
# ---------------------------------------------------------------------------------------------
def _channel_dropout(x: Tensor, p: float, training: bool, op: str, spatial: int) -> Tensor:
    """Zero whole channels of an (N, C, *spatial) input with probability p (the rest scaled
    by 1 / (1 - p)): one draw per (example, channel), broadcast over the positions."""
    if x.ndim != spatial + 2:
        dims = "H, W" if spatial == 2 else "L"
        raise op_error(op, f"expects an (N, C, {dims}) input", x.shape, f"pass (N, C, {dims})")
    return x._dropout(p, training, op, tuple(x.shape[:2]) + (1,) * spatial)


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:  # noqa: A002
    """Channel dropout of an (N, C, L) input (see `dropout2d`)."""
    return _channel_dropout(_tensor(input, "dropout1d"), p, training, "dropout1d", 1)


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:  # noqa: A002
    """Zero whole channels of an (N, C, H, W) input with probability p, scaling the rest by
    1 / (1 - p) (PyTorch's Dropout2d); identity when not training."""
    return _channel_dropout(_tensor(input, "dropout2d"), p, training, "dropout2d", 2)


def instance_norm(
    input: Tensor,  # noqa: A002
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-05,
) -> Tensor:
    """Normalise each channel of each example over its positions (biased variance), as
    PyTorch's; with running statistics given they are updated (the batch's average of the
    instance statistics) and, with use_input_stats=False, used instead."""
    x = _tensor(input, "instance_norm")
    if x.ndim < 3:
        raise op_error("instance_norm", "expects an (N, C, ...) input", x.shape, "add dims")
    axes = tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if use_input_stats:
        mean = x.mean(axes, keepdim=True)
        var = x.var(axes, keepdim=True, correction=0)
        count = math.prod(x.shape[2:])
        _update_running(running_mean, mean.mean(0), momentum)
        _update_running(running_var, (var * (count / max(count - 1, 1))).mean(0), momentum)
    else:
        if running_mean is None or running_var is None:
            raise op_error(
                "instance_norm",
                "use_input_stats=False needs running_mean and running_var",
                x.shape,
                "pass them, or use_input_stats=True",
            )
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
    return _affine((x - mean) / (var + eps).sqrt(), weight, bias, shape)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:  # noqa: A002
    """(N, C r^2, H, W) -> (N, C, H r, W r): each group of r^2 channels becomes an r x r
    block of positions (sub-pixel convolution's upsampling), as PyTorch's."""
    x, r = _tensor(input, "pixel_shuffle"), upscale_factor
    if x.ndim < 3 or not isinstance(r, int) or r < 1 or x.shape[-3] % (r * r):
        raise op_error(
            "pixel_shuffle",
            f"the channel count must be divisible by upscale_factor^2 = {r}^2",
            x.shape,
            "pass an (N, C*r*r, H, W) input",
        )
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    k = len(lead)
    y = y.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return y.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:  # noqa: A002
    """The inverse of `pixel_shuffle`: (N, C, H r, W r) -> (N, C r^2, H, W)."""
    x, r = _tensor(input, "pixel_unshuffle"), downscale_factor
    if x.ndim < 3 or not isinstance(r, int) or r < 1 or x.shape[-1] % r or x.shape[-2] % r:
        raise op_error(
            "pixel_unshuffle",
            f"height and width must be divisible by downscale_factor = {r}",
            x.shape,
            "crop or pad the input first",
        )
    *lead, c, h, w = x.shape
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    k = len(lead)
    y = y.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return y.reshape(*lead, c * r * r, h // r, w // r)


def _pool1d(x: Tensor, op: str, pool: Any) -> Tensor:
    if x.ndim not in (2, 3):
        raise op_error(op, "expects an (N, C, L) or (C, L) input", x.shape, "add a channel dim")
    return pool(x.unsqueeze(-2)).squeeze(-2)


def max_pool1d(
    input: Tensor,  # noqa: A002
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """Max over windows of the last dim (max_pool2d over a height of 1)."""
    s = kernel_size if stride is None else stride
    return _pool1d(
        _tensor(input, "max_pool1d"),
        "max_pool1d",
        lambda t: max_pool2d(t, (1, kernel_size), (1, s), (0, padding), (1, dilation), ceil_mode),
    )


def avg_pool1d(
    input: Tensor,  # noqa: A002
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over windows of the last dim (avg_pool2d over a height of 1)."""
    s = kernel_size if stride is None else stride
    return _pool1d(
        _tensor(input, "avg_pool1d"),
        "avg_pool1d",
        lambda t: avg_pool2d(
            t, (1, kernel_size), (1, s), (0, padding), ceil_mode, count_include_pad
        ),
    )


def adaptive_avg_pool1d(input: Tensor, output_size: int) -> Tensor:  # noqa: A002
    return _pool1d(
        _tensor(input, "adaptive_avg_pool1d"),
        "adaptive_avg_pool1d",
        lambda t: t.adaptive_avg_pool2d((1, output_size)),
    )


def adaptive_max_pool1d(input: Tensor, output_size: int) -> Tensor:  # noqa: A002
    return _pool1d(
        _tensor(input, "adaptive_max_pool1d"),
        "adaptive_max_pool1d",
        lambda t: adaptive_max_pool2d(t, (1, output_size)),
    )


def embedding(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """The rows of `weight` (num_embeddings, dim) at the integer `input` indices: shape
    input.shape + (dim,). The index is data (checked in range; a compiled function may take
    it as input); the row at `padding_idx` gets no gradient, as PyTorch's. (max_norm's
    in-place renormalisation, scale_grad_by_freq and sparse gradients are not offered.)"""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise op_error(
            "embedding",
            "max_norm, scale_grad_by_freq and sparse are not offered",
            f"max_norm={max_norm}, scale_grad_by_freq={scale_grad_by_freq}, sparse={sparse}",
            "leave them at their defaults (renormalise the weight yourself under no_grad)",
        )
    idx = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    w = _tensor(weight, "embedding")
    if w.ndim != 2 or idx.dtype.kind not in "iu":
        raise op_error(
            "embedding",
            "expects integer indices and a 2-D (num_embeddings, dim) weight",
            f"indices {idx.shape} {idx.dtype}, weight {w.shape}",
            "pass int64 indices",
        )
    if padding_idx is not None:
        rows = np.arange(w.shape[0]).reshape(-1, 1) == padding_idx % w.shape[0]
        w = w.where(Tensor(~rows), w.detach())
    flat = idx.reshape(-1, 1).expand(idx.size, w.shape[1])
    return w.gather(0, flat).reshape(*idx.shape, w.shape[1])


# Every public function defined above, so `from tinygrad_edu.functional import *` (what
# `tinygrad_edu.nn.functional` does) exports the API and nothing it merely imports.
__all__ = sorted(
    name
    for name, value in list(globals().items())
    if callable(value) and getattr(value, "__module__", None) == __name__ and name[0] != "_"
)
