"""GPU benchmark: the compiled `cuda` backend vs PyTorch eager (cuDNN) on the same GPU.

Prints one JSON line: images/s for the AlexNet conv1 block (conv 96@11x11/4 + bias + ReLU +
max-pool 3/2) forward at N=128, and for the paper AlexNet training step at N=128, each on our
compiled CUDA kernels and on PyTorch eager, with ratios (ours / PyTorch throughput; the target
is >= 0.5 for the conv1 block). Needs CuPy, a GPU, and (for the comparison) PyTorch with CUDA.
Medians over --repeats calls after a warm-up; each call ends with a device synchronisation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import compiler
from models import AlexNet
from tinygrad_edu import manual_seed, nn, optim


class Conv1Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 96, 11, stride=4)

    def forward(self, x: Any) -> Any:
        return self.conv(x).relu().max_pool2d(3, 2)


def median_seconds(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import cupy

    sync = cupy.cuda.Stream.null.synchronize
    n = args.batch
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {
        "benchmark": "tinygrad_edu cuda",
        "batch": n,
        "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
    }
    x = rng.standard_normal((n, 3, 227, 227)).astype(np.float32)
    y = rng.integers(0, 1000, n)
    xd, yd = cupy.asarray(x), cupy.asarray(y)

    manual_seed(0)
    block = Conv1Block()
    fwd = compiler.compile(block, x, backend="cuda")
    result["conv1_ours_s"] = median_seconds(lambda: fwd(xd), sync, args.repeats)
    print(f"conv1 block ours: {result['conv1_ours_s'] * 1e3:.2f} ms", file=sys.stderr)

    manual_seed(0)
    model = AlexNet(1000, "paper")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = compiler.compile_train_step(
        model, lambda o, t: o.cross_entropy(t), opt, x, y, backend="cuda"
    )
    result["alexnet_train_ours_s"] = median_seconds(lambda: step(xd, yd), sync, args.repeats)
    print(f"AlexNet step ours: {result['alexnet_train_ours_s'] * 1e3:.1f} ms", file=sys.stderr)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        tsync = torch.cuda.synchronize
        conv = torch.nn.Conv2d(3, 96, 11, stride=4).cuda()
        tx = torch.tensor(x, device="cuda")
        with torch.no_grad():
            result["conv1_torch_s"] = median_seconds(
                lambda: torch.nn.functional.max_pool2d(conv(tx).relu(), 3, 2), tsync, args.repeats
            )
        tnet = torch.nn.Sequential(
            torch.nn.Conv2d(3, 96, 11, 4),
            torch.nn.ReLU(),
            torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
            torch.nn.MaxPool2d(3, 2),
            torch.nn.Conv2d(96, 256, 5, padding=2, groups=2),
            torch.nn.ReLU(),
            torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
            torch.nn.MaxPool2d(3, 2),
            torch.nn.Conv2d(256, 384, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(384, 384, 3, padding=1, groups=2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(384, 256, 3, padding=1, groups=2),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(3, 2),
            torch.nn.Flatten(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(9216, 4096),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(4096, 4096),
            torch.nn.ReLU(),
            torch.nn.Linear(4096, 1000),
        ).cuda()
        topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        ty = torch.tensor(y, device="cuda")

        def torch_step() -> None:
            loss = torch.nn.functional.cross_entropy(tnet(tx), ty)
            topt.zero_grad()
            loss.backward()
            topt.step()

        result["alexnet_train_torch_s"] = median_seconds(torch_step, tsync, args.repeats)
        for key in ("conv1", "alexnet_train"):
            ours, theirs = result[f"{key}_ours_s"], result[f"{key}_torch_s"]
            result[f"{key}_images_per_s_ours"] = n / ours
            result[f"{key}_images_per_s_torch"] = n / theirs
            result[f"{key}_throughput_ratio_vs_torch"] = theirs / ours
    print(json.dumps(result))


if __name__ == "__main__":
    main()
