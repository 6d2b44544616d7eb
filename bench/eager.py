"""Eager-mode CPU benchmark: tinygrad_edu next to PyTorch and the machine's BLAS.

Run from the repository root:

    python bench/eager.py            # full run (~10 s on an idle 2-core box)
    python bench/eager.py --quick    # 1 repeat, N=16 only (a smoke test)

It prints ONE JSON line on stdout (progress goes to stderr), so it can be piped into a file or
`jq`. What it measures, each as the median of `--repeats` timed runs after one warm-up run
(`time.perf_counter`):

1. AlexNet conv1 block: x (N, 3, 227, 227) float32 -> conv2d(weight 96x3x11x11, bias 96,
   stride 4, padding 0) -> ReLU -> max_pool2d(3, stride 2) -> (N, 96, 27, 27), for N=1 and
   N=16 (default 5 repeats).
   - `conv1_fwd_n{N}_ms`: forward only, run under `no_grad` (`torch.no_grad` for torch).
   - `conv1_fwdbwd_n{N}_ms`: forward, `loss = out.sum()`, backward to x, weight and bias.
   - `*_gflops`: conv FLOPs / time, where the conv forward is 2*N*96*55*55*3*11*11 FLOPs
     (about 0.21 GFLOP per image) and forward+backward counts 3x that (the backward is
     counted as 2x the forward: the input gradient and the weight gradient). ReLU, pooling
     and the bias are not counted, so these are slight underestimates of the work done.
2. MLP 64-128-64-10 (ReLU) training, `mlp_epoch_s`: seconds for one epoch over
   digits-sized synthetic data (1437 samples x 64 features, 10 classes; batch size 32, so 45
   steps with a short last batch), mean cross-entropy, plain SGD (lr 0.1) applied by hand in
   numpy / under `torch.no_grad`. Default 3 repeats. Both libraries start from the same
   weights and see the same batches, so `mlp_final_loss` and `mlp_final_loss_torch` (mean
   training loss of the last epoch) should agree to a few decimals: a cheap correctness check.
3. `numpy_matmul_gflops`: a 1024x1024x1024 float32 `a @ b` (2*1024**3 FLOPs), i.e. what the
   BLAS numpy is linked against reaches on this machine. tinygrad_edu's conv is im2col plus a
   matmul, so its conv GFLOP/s is best read as a fraction of this number.

How to read it: `*_ms` / `*_s` are times (lower is better), `*_gflops` are rates (higher is
better). When `import torch` works, every workload is also timed in PyTorch eager on CPU
(float32, default thread count) under the key with a `_torch` suffix, and
`*_ratio_vs_torch` = tinygrad_edu time / torch time: 1.0 means as fast as torch, 3.0 means
three times slower. Without torch (or with `--no-torch`) those keys are null.
`conv1_max_abs_diff_vs_torch` is the largest |difference| of the N=16 forward outputs.

Timings are only as good as the machine is idle: BLAS is multi-threaded, so another busy
process on a 2-core box can make a run 3-5x slower (`load_avg_1min_at_start` helps spot that;
compare runs by the `*_ratio_vs_torch` keys and by GFLOP/s against `numpy_matmul_gflops`).
Keys for a batch size that was not run (N=1 under `--quick`) are null, so the schema is fixed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from common import (  # noqa: E402
    add_timing_options,
    log,
    median_seconds,
    parse_timing_args,
    print_result,
    ratio,
    rounded,
)

from tinygrad_edu import Tensor, no_grad  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional (the `bench` extra)
    torch = None

BATCH_SIZES: tuple[int, ...] = (1, 16)
CONV_OUT_HW = 55  # (227 - 11) / 4 + 1
MLP_SIZES: tuple[int, ...] = (64, 128, 64, 10)
MLP_SAMPLES, MLP_BATCH, MLP_LR = 1437, 32, 0.1
SEED = 0


def conv_flops(n: int) -> int:
    """Forward FLOPs of AlexNet conv1 (multiply + add per MAC)."""
    return 2 * n * 96 * CONV_OUT_HW * CONV_OUT_HW * 3 * 11 * 11


# -- workloads ------------------------------------------------------------------------------


def numpy_matmul_gflops(repeats: int) -> float:
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((1024, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    seconds = median_seconds(lambda: a @ b, max(repeats, 3))
    return 2 * 1024**3 / seconds / 1e9


def conv_inputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED + n)
    x = rng.standard_normal((n, 3, 227, 227), dtype=np.float32)
    w = rng.standard_normal((96, 3, 11, 11), dtype=np.float32) * np.float32(0.05)
    b = rng.standard_normal(96, dtype=np.float32) * np.float32(0.1)
    return x, w, b


def bench_conv_ours(n: int, repeats: int) -> tuple[float, float, np.ndarray]:
    """(forward s, forward+backward s, forward output) for tinygrad_edu."""
    xa, wa, ba = conv_inputs(n)
    x, w, b = (Tensor(a, requires_grad=True) for a in (xa, wa, ba))

    def block() -> Tensor:
        return x.conv2d(w, b, stride=4, padding=0).relu().max_pool2d(3, stride=2)

    def forward() -> Tensor:
        with no_grad():
            return block()

    def forward_backward() -> None:
        x.grad = w.grad = b.grad = None
        block().sum().backward()

    fwd = median_seconds(forward, repeats)
    fwdbwd = median_seconds(forward_backward, repeats)
    for t in (x, w, b):
        assert t.grad is not None and t.grad.shape == t.shape, "backward missed a gradient"
    return fwd, fwdbwd, forward().numpy()


def bench_conv_torch(n: int, repeats: int) -> tuple[float, float, np.ndarray]:
    """(forward s, forward+backward s, forward output) for PyTorch eager on CPU."""
    assert torch is not None
    functional = torch.nn.functional
    xa, wa, ba = conv_inputs(n)
    x, w, b = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (xa, wa, ba))

    def block() -> Any:
        out = functional.conv2d(x, w, b, stride=4, padding=0)
        return functional.max_pool2d(functional.relu(out), 3, stride=2)

    def forward() -> Any:
        with torch.no_grad():
            return block()

    def forward_backward() -> None:
        x.grad = w.grad = b.grad = None
        block().sum().backward()

    fwd = median_seconds(forward, repeats)
    fwdbwd = median_seconds(forward_backward, repeats)
    return fwd, fwdbwd, forward().numpy()


def mlp_data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Synthetic digits-sized data (learnable: labels from a random linear map) and weights."""
    rng = np.random.default_rng(SEED)
    features = rng.uniform(0, 16, (MLP_SAMPLES, MLP_SIZES[0])).astype(np.float32) / 16
    teacher = rng.standard_normal((MLP_SIZES[0], MLP_SIZES[-1])).astype(np.float32)
    labels = np.argmax((features - features.mean(0)) @ teacher, axis=1).astype(np.int64)
    weights, biases = [], []
    for fan_in, fan_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True):
        bound = 1 / np.sqrt(fan_in)  # PyTorch nn.Linear's default init range
        weights.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        biases.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return features, labels, weights, biases


def epoch_orders(epochs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED + 1)
    return [rng.permutation(MLP_SAMPLES) for _ in range(epochs)]


def bench_mlp_ours(repeats: int) -> tuple[float, float]:
    """(seconds per epoch, mean loss of the last epoch) for tinygrad_edu."""
    features, labels, weights, biases = mlp_data()
    params = [
        Tensor(a, requires_grad=True) for pair in zip(weights, biases, strict=True) for a in pair
    ]
    orders = iter(epoch_orders(repeats + 1))
    last_loss = [float("nan")]

    def epoch() -> None:
        order, total = next(orders), 0.0
        for start in range(0, MLP_SAMPLES, MLP_BATCH):
            idx = order[start : start + MLP_BATCH]
            h = Tensor(features[idx])
            for layer in range(len(params) // 2):
                h = h.linear(params[2 * layer], params[2 * layer + 1])
                if layer < len(params) // 2 - 1:
                    h = h.relu()
            loss = h.cross_entropy(labels[idx])
            for p in params:
                p.grad = None
            loss.backward()
            for p in params:
                p.data -= MLP_LR * p.grad.data
            total += loss.item() * len(idx)
        last_loss[0] = total / MLP_SAMPLES

    seconds = median_seconds(epoch, repeats)
    return seconds, last_loss[0]


def bench_mlp_torch(repeats: int) -> tuple[float, float]:
    """(seconds per epoch, mean loss of the last epoch) for PyTorch eager on CPU."""
    assert torch is not None
    functional = torch.nn.functional
    features, labels, weights, biases = mlp_data()
    params = [
        torch.from_numpy(a.copy()).requires_grad_(True)
        for pair in zip(weights, biases, strict=True)
        for a in pair
    ]
    x_all, y_all = torch.from_numpy(features), torch.from_numpy(labels)
    orders = iter(epoch_orders(repeats + 1))
    last_loss = [float("nan")]

    def epoch() -> None:
        order, total = torch.from_numpy(next(orders)), 0.0
        for start in range(0, MLP_SAMPLES, MLP_BATCH):
            idx = order[start : start + MLP_BATCH]
            h = x_all[idx]
            for layer in range(len(params) // 2):
                h = functional.linear(h, params[2 * layer], params[2 * layer + 1])
                if layer < len(params) // 2 - 1:
                    h = functional.relu(h)
            loss = functional.cross_entropy(h, y_all[idx])
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= MLP_LR * p.grad
            total += loss.item() * len(idx)
        last_loss[0] = total / MLP_SAMPLES

    seconds = median_seconds(epoch, repeats)
    return seconds, last_loss[0]


# -- driver ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat per workload and N=16 only (a smoke test)"
    )
    add_timing_options(parser, "5 conv, 3 epoch")
    return parse_timing_args(parser, argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_torch = torch is not None and not args.no_torch
    conv_repeats = args.repeats or (1 if args.quick else 5)
    epoch_repeats = args.repeats or (1 if args.quick else 3)
    sizes = (16,) if args.quick else BATCH_SIZES
    result: dict[str, Any] = {
        "benchmark": "tinygrad_edu eager CPU",
        "mode": "quick" if args.quick else "full",
        "conv_repeats": conv_repeats,
        "epoch_repeats": epoch_repeats,
        "numpy_version": np.__version__,
        "torch_version": torch.__version__ if torch is not None else None,
        "torch_used": use_torch,
        "torch_num_threads": torch.get_num_threads() if use_torch else None,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }

    log("numpy 1024^3 float32 matmul")
    result["numpy_matmul_gflops"] = round(numpy_matmul_gflops(conv_repeats), 2)

    for n in BATCH_SIZES:
        ours: tuple[float, float, np.ndarray] | None = None
        theirs: tuple[float, float, np.ndarray] | None = None
        if n in sizes:
            log(f"conv1 block N={n}: tinygrad_edu")
            ours = bench_conv_ours(n, conv_repeats)
            if use_torch:
                log(f"conv1 block N={n}: torch")
                theirs = bench_conv_torch(n, conv_repeats)
        for phase, index, factor in (("fwd", 0, 1), ("fwdbwd", 1, 3)):
            key = f"conv1_{phase}_n{n}"
            ours_s = ours[index] if ours else None
            theirs_s = theirs[index] if theirs else None
            flops = factor * conv_flops(n)
            result[f"{key}_ms"] = rounded(ours_s * 1e3 if ours_s else None)
            result[f"{key}_gflops"] = rounded(flops / ours_s / 1e9 if ours_s else None, 2)
            result[f"{key}_torch_ms"] = rounded(theirs_s * 1e3 if theirs_s else None)
            result[f"{key}_torch_gflops"] = rounded(flops / theirs_s / 1e9 if theirs_s else None, 2)
            result[f"{key}_ratio_vs_torch"] = ratio(ours_s, theirs_s)
        if n == 16:
            diff = float(np.max(np.abs(ours[2] - theirs[2]))) if ours and theirs else None
            result["conv1_max_abs_diff_vs_torch"] = diff

    log("MLP epoch: tinygrad_edu")
    epoch_s, loss = bench_mlp_ours(epoch_repeats)
    epoch_torch_s, loss_torch = None, None
    if use_torch:
        log("MLP epoch: torch")
        epoch_torch_s, loss_torch = bench_mlp_torch(epoch_repeats)
    result["mlp_epoch_s"] = rounded(epoch_s, 4)
    result["mlp_epoch_torch_s"] = rounded(epoch_torch_s, 4)
    result["mlp_epoch_ratio_vs_torch"] = ratio(epoch_s, epoch_torch_s)
    result["mlp_final_loss"] = rounded(loss, 5)
    result["mlp_final_loss_torch"] = rounded(loss_torch, 5)
    return result


def main(argv: list[str] | None = None) -> None:
    print_result(run, parse_args(argv))


if __name__ == "__main__":
    main()
