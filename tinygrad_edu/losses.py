"""Loss functions with PyTorch's semantics, as compositions of DSL ops.

`nll_loss` and `cross_entropy` take class indices (with per-class `weight`, `ignore_index`,
`reduction`, and for cross_entropy `label_smoothing`) or, for cross_entropy, class
probabilities (a float target of the input's shape). Inputs are (C,), (N, C) or
(N, C, d1, d2, ...), the class dim second, as in PyTorch. A weighted mean divides by the sum
of the weights of the counted targets (not by their number), exactly as PyTorch does; an
all-ignored batch gives NaN, as there. The elementwise losses (`mse_loss`, `l1_loss`,
`smooth_l1_loss`, `huber_loss`, the binary cross-entropies) share `reduce`.

Labels are data, not parameters: on eager tensors they are checked (an out-of-range class
raises an `OpIndexError` naming the op, the value and the fix) and turned into one-hot
constants; in a traced (compiled) graph the same masks are built from graph ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .autograd import record_input_check
from .errors import OpIndexError, op_error
from .tensor import MetaArray, Tensor, where

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, op: str) -> None:
    if reduction not in REDUCTIONS:
        raise op_error(
            op,
            f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}",
            reduction,
            "pass reduction='mean'",
        )


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The `reduction` that PyTorch's deprecated size_average/reduce arguments mean."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    """Apply `reduction` to elementwise losses."""
    check_reduction(reduction, op)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty input: NaN, as PyTorch
        return loss.sum() / (loss.size or 0.0)


def _as_labels(target: Any) -> Tensor:
    return target if isinstance(target, Tensor) else Tensor(np.asarray(target))


def _check_weight(weight: Tensor | None, classes: int, x: Tensor, op: str) -> Tensor | None:
    if weight is None:
        return None
    w = weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight), dtype=x.dtype)
    if w.shape != (classes,):
        raise op_error(
            op,
            f"weight must have one entry per class ({classes},)",
            f"input {x.shape}, weight {w.shape}",
            f"pass a 1-D weight of length {classes}",
        )
    return w.cast(x.dtype) if w.dtype != x.dtype else w


def _class_layout(x: Tensor, op: str) -> tuple[Tensor, bool]:
    """Input as (N, C, ...); True when a single (C,) sample was given."""
    if x.ndim == 0:
        raise op_error(
            op,
            "input must have a class dim: (C,), (N, C) or (N, C, d1, ...)",
            x.shape,
            "pass logits with the classes in dim 1",
        )
    if x.ndim == 1:
        return x.unsqueeze(0), True
    return x, False


def _class_targets(
    x: Tensor, target: Any, single: bool, ignore_index: int, op: str
) -> tuple[Tensor, Tensor]:
    """(one-hot of the counted targets, laid out like x; 0/1 mask of the counted targets,
    shaped like the target). Checks shape, dtype and range."""
    labels = _as_labels(target)
    if single:
        labels = labels.reshape(1) if labels.ndim == 0 else labels
    want = x.shape[:1] + x.shape[2:]
    if labels.shape != want:
        raise op_error(
            op,
            f"target must be {want} (the input's shape without the class dim)",
            f"input {x.shape if not single else x.shape[1:]}, target {labels.shape}",
            "pass one class index per sample (or probabilities of the input's shape)",
        )
    if labels.dtype.kind not in "iu":
        raise op_error(
            op,
            f"targets must be integer class indices, got {labels.dtype}",
            labels.shape,
            "pass labels.astype(int), or float probabilities of the input's shape",
        )
    classes = x.shape[1]

    def check(values: np.ndarray) -> None:
        if not values.size or (values.min() >= 0 and values.max() < classes):
            return  # (the common case, in two reductions: a compiled step runs this per call)
        counted_np = values != ignore_index
        bad = values[counted_np & ((values < 0) | (values >= classes))]
        if bad.size:
            raise op_error(
                op,
                f"target values must be in [0, {classes - 1}] (or ignore_index={ignore_index}),"
                f" got {int(bad.flat[0])}",
                f"input {x.shape}",
                "check the label encoding or the number of classes",
                OpIndexError,  # PyTorch: IndexError "Target ... is out of bounds"
            )

    if isinstance(labels.data, MetaArray):  # traced: a compiled program checks each call's
        record_input_check(target if isinstance(target, Tensor) else labels, check)
    else:
        check(labels.numpy())
    # the same graph ops eagerly and traced, so the two graphs match node for node
    counted = labels != ignore_index
    safe = labels.where(counted, 0)
    mask = counted.cast(x.dtype)
    onehot = safe.one_hot(classes, dtype=x.dtype)  # (N, d..., C)
    if x.ndim > 2:
        onehot = onehot.permute((0, x.ndim - 1, *range(1, x.ndim - 1)))
    return onehot, mask


def _per_class(weight: Tensor, x: Tensor) -> Tensor:
    """weight (C,) shaped to broadcast along x's class dim 1."""
    return weight.reshape((1, -1) + (1,) * (x.ndim - 2))


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    op: str = "nll_loss",
) -> Tensor:
    """Negative log-likelihood of class `target` under log-probabilities `input`:
    -weight[t] * input[t] per sample; "mean" divides by the counted targets' total weight."""
    check_reduction(reduction, op)
    x, single = _class_layout(input, op)
    w = _check_weight(weight, x.shape[1], x, op)
    onehot, mask = _class_targets(x, target, single, ignore_index, op)
    if w is not None:
        onehot = onehot * _per_class(w, x)  # weight of each sample's class (0 if ignored)
    picked = onehot * mask.unsqueeze(1)
    # a select, not a product alone: 0 * -inf is NaN, and a class that is not the target (or
    # a row that is ignored) may hold -inf, as a masked-out logit does
    losses = -(x * picked).where(picked != 0, 0.0).sum(axis=1)
    if reduction == "none":
        return losses.reshape(()) if single else losses
    if reduction == "sum":
        return losses.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: NaN, as PyTorch
        return losses.sum() / picked.sum()


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """log_softmax over the class dim, then NLL (class indices) or -sum p log q (class
    probabilities). With label_smoothing e the target mixes with the uniform distribution:
    (1 - e) * nll + e/C * (the loss against every class, weighted and masked alike)."""
    op = "cross_entropy"
    check_reduction(reduction, op)
    if not 0.0 <= label_smoothing <= 1.0:
        raise op_error(
            op,
            f"label_smoothing must be in [0, 1], got {label_smoothing}",
            input.shape,
            "pass label_smoothing=0.1, say",
        )
    x, single = _class_layout(input, op)
    classes = x.shape[1]
    logp = x.log_softmax(axis=1)
    labels = _as_labels(target)
    if labels.dtype.kind == "f":
        return _soft_cross_entropy(
            logp, labels, weight, reduction, label_smoothing, single, input.shape
        )
    nll = nll_loss(logp[0] if single else logp, labels, weight, ignore_index, reduction, op=op)
    if label_smoothing == 0.0:
        return nll
    w = _check_weight(weight, classes, x, op)
    onehot, mask = _class_targets(x, labels, single, ignore_index, op)
    spread = logp if w is None else logp * _per_class(w, x)
    smooth = (-spread.sum(axis=1)).where(mask != 0, 0.0)  # an ignored row may be -inf
    if reduction == "none":
        smooth = smooth.reshape(()) if single else smooth
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        counted = mask if w is None else (onehot * _per_class(w, x)).sum(axis=1) * mask
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth = smooth.sum() / counted.sum()
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


def _soft_cross_entropy(
    logp: Tensor,
    probs: Tensor,
    weight: Tensor | None,
    reduction: str,
    label_smoothing: float,
    single: bool,
    input_shape: tuple[int, ...],
) -> Tensor:
    op = "cross_entropy"
    if tuple(probs.shape) != tuple(input_shape):
        raise op_error(
            op,
            "probability targets must have the input's shape",
            f"input {input_shape}, target {probs.shape}",
            "pass class indices (integers) or probabilities shaped like the input",
        )
    classes = logp.shape[1]
    p = probs.reshape(logp.shape).cast(logp.dtype)  # differentiable, as PyTorch's
    if label_smoothing > 0.0:
        p = p * (1.0 - label_smoothing) + label_smoothing / classes
    w = _check_weight(weight, classes, logp, op)
    terms = logp * p if w is None else logp * p * _per_class(w, logp)
    losses = -terms.sum(axis=1)
    if reduction == "none":
        return losses.reshape(()) if single else losses
    if reduction == "sum":
        return losses.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # samples, not weights, as PyTorch
        return losses.sum() / (losses.size or 0.0)


# ---------------------------------------------------------------------------------------------
# elementwise losses
# ---------------------------------------------------------------------------------------------
def _target_like(x: Tensor, target: Any, op: str) -> Tensor:
    t = x._lift(target)
    if t.shape != x.shape:
        raise op_error(
            op,
            "input and target shapes differ",
            f"input {x.shape}, target {t.shape}",
            "pass a target of the input's shape",
        )
    return t.cast(x.dtype) if t.dtype != x.dtype else t


def _elementwise_weight(x: Tensor, weight: Any, op: str) -> Tensor | None:
    if weight is None:
        return None
    w = x._lift(weight)
    if w.shape != x.shape:
        raise op_error(
            op,
            "weight must have the input's shape",
            f"input {x.shape}, weight {w.shape}",
            "pass one weight per element",
        )
    return w.cast(x.dtype).detach()


def _weighted_mean(loss: Tensor, w: Tensor | None, reduction: str, op: str) -> Tensor:
    """PyTorch's weighted mse/l1: "mean" divides sum(w * loss) by sum(w)."""
    if w is None:
        return reduce(loss, reduction, op)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return (loss * w).sum() / w.sum()
    return reduce(loss * w, reduction, op)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean", weight: Any = None) -> Tensor:
    check_reduction(reduction, "mse_loss")
    d = input - _target_like(input, target, "mse_loss")
    w = _elementwise_weight(input, weight, "mse_loss")
    return _weighted_mean(d * d, w, reduction, "mse_loss")


def l1_loss(input: Tensor, target: Any, reduction: str = "mean", weight: Any = None) -> Tensor:
    check_reduction(reduction, "l1_loss")
    d = (input - _target_like(input, target, "l1_loss")).abs()
    return _weighted_mean(d, _elementwise_weight(input, weight, "l1_loss"), reduction, "l1_loss")


def smooth_l1_loss(
    input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0: the L1 loss)."""
    if beta < 0:
        raise op_error(
            "smooth_l1_loss", f"beta must be >= 0, got {beta}", input.shape, "pass beta=1.0"
        )
    d = (input - _target_like(input, target, "smooth_l1_loss")).abs()
    if beta == 0:
        return reduce(d, reduction, "smooth_l1_loss")
    loss = where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(
    input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0, weight: Any = None
) -> Tensor:
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta); a `weight` scales each
    element (and "mean" still divides by the element count, as PyTorch does)."""
    if not delta > 0:
        raise op_error(
            "huber_loss", f"delta must be > 0, got {delta}", input.shape, "pass delta=1.0"
        )
    d = (input - _target_like(input, target, "huber_loss")).abs()
    loss = where(d <= delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    w = _elementwise_weight(input, weight, "huber_loss")
    return reduce(loss if w is None else loss * w, reduction, "huber_loss")


def _weighted(loss: Tensor, weight: Any, op: str) -> Tensor:
    if weight is None:
        return loss
    w = loss._lift(weight)
    try:
        np.broadcast_shapes(w.shape, loss.shape)
    except ValueError:
        raise op_error(
            op,
            "weight does not broadcast to the input",
            f"input {loss.shape}, weight {w.shape}",
            "pass a weight broadcastable to the input",
        ) from None
    return loss * w.cast(loss.dtype).detach()


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """BCE of probabilities `input`; logs clamped at -100 as PyTorch does, so p = 0 or 1
    gives a finite loss."""
    op = "binary_cross_entropy"
    check_reduction(reduction, op)
    t = _target_like(input, target, op)  # differentiable too: d/dy = log(1 - p) - log(p)
    if not isinstance(input.data, MetaArray) and input.size:
        values = input.numpy()
        if np.isnan(values).any():
            raise op_error(
                op, "input contains NaN", input.shape, "check the model for NaNs before the loss"
            )
        if values.min() < 0 or values.max() > 1:
            raise op_error(
                op,
                "input must be probabilities in [0, 1]",
                input.shape,
                "apply sigmoid first, or use binary_cross_entropy_with_logits",
            )
    loss = input._call(ops.BCE, t)
    return reduce(_weighted(loss, weight, op), reduction, op)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """-[pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x))], stable."""
    op = "binary_cross_entropy_with_logits"
    t = _target_like(input, target, op)
    log_p = input.logsigmoid()
    log_q = (-input).logsigmoid()
    if pos_weight is None:
        loss = -(t * log_p + (1.0 - t) * log_q)
    else:
        pw = input._lift(pos_weight).cast(input.dtype).detach()
        loss = -(t * log_p * pw + (1.0 - t) * log_q)
    return reduce(_weighted(loss, weight, op), reduction, op)
