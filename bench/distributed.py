"""Data-parallel benchmark: allreduce cost, training-step time with 1 and 2 ranks, a scaling model.

Run from the repository root (needs `pip install -e ".[mpi]"`):

    python bench/distributed.py            # allreduce 4 KiB-244 MB, alexnet-mini and paper AlexNet
    python bench/distributed.py --quick    # allreduce up to 16 MiB, alexnet-mini only

It launches itself under `mpiexec -n 2 python -m mpi4py` for the 2-rank numbers and runs the
1-rank ones as a plain process, and prints ONE JSON line on stdout (progress on stderr):

1. `allreduce_{size}_ms`, `allreduce_{size}_gbps`: in-place float32 `World.allreduce` on 2 ranks
   of this host (median over repeats, a barrier before each), and the algorithm bandwidth
   (bytes / time).
2. `{model}_step_s_{w}ranks`: median eager data-parallel training step (the CLI's step:
   `DataParallel` sync, forward, backward, bucketed gradient allreduce, SGD update) at a fixed
   global batch (alexnet-mini 32, paper AlexNet 16), and `{model}_speedup` = 1-rank / 2-rank.
   On one 2-core machine expect no speed-up: both ranks share the cores one process uses.
   The gradients are reduced after backward (`loss.backward(); reduce_gradients`); the
   `..._2ranks_overlap` figures reduce each bucket while backward runs (`DataParallel.backward`,
   and for `alexnet_mini_compiled` `GradientStep.reduce_into`: the gradient kernels writing
   into the flat buffer), with `{model}_overlap_gain` = plain / overlapped. Buckets:
   `bucket_bytes` (alexnet-mini's 1.4 MB of gradients in 256 KiB buckets, the paper AlexNet's
   244 MB in DDP's 25 MiB).
3. `scaling`: predicted images/s and efficiency of the paper AlexNet (61M parameters, 244 MB
   of gradients) for 2-64 machines at 10 and 100 Gb/s, without and with overlap of the
   allreduce with compute, from the measured 1-rank time per image and a ring allreduce
   (`2 (W-1)/W * bytes` per machine at the link's rate). A model, not a cluster measurement;
   null with `--quick` (which does not time the paper AlexNet).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import log, print_result, rounded  # noqa: E402

PAPER_GRADIENT_BYTES = 60_965_224 * 4
SIZES = {"4KiB": 4 << 10, "64KiB": 64 << 10, "1MiB": 1 << 20, "16MiB": 16 << 20}
SIZES_FULL = {**SIZES, "244MB": PAPER_GRADIENT_BYTES}
#: (model name, variant, global batch, input side)
MODELS = {"alexnet_mini": ("mini", 32, 32, 10), "alexnet_paper": ("paper", 16, 227, 1000)}
#: allreduce bucket per model: one 25 MiB bucket would hold all of alexnet-mini's gradients,
#: leaving nothing to overlap
BUCKET_BYTES = {"alexnet_mini": 256 << 10, "alexnet_paper": 25 << 20}


def allreduce_times(sizes: dict[str, int], repeats: int) -> dict[str, float]:
    from tinygrad_edu import distributed

    w = distributed.world()
    out: dict[str, float] = {}
    for name, nbytes in sizes.items():
        buf = np.ones(nbytes // 4, np.float32)
        times = []
        for _ in range(repeats + 1):
            w.barrier()
            t0 = time.perf_counter()
            w.allreduce(buf)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times[1:])
        out[f"allreduce_{name}_ms"] = rounded(seconds * 1e3, 4)
        out[f"allreduce_{name}_gbps"] = rounded(nbytes / seconds / 1e9, 3)
    return out


def step_time(model_name: str, steps: int, overlap: bool = False, compiled: bool = False) -> float:
    """Median data-parallel step of `model_name` at its global batch: eager or compiled
    (gradient kernels, allreduce, update kernels), gradients reduced after backward or
    overlapped with it."""
    from compiler.grad_step import compile_gradient_step, compile_update_step
    from models.alexnet import AlexNet
    from tinygrad_edu import Tensor, distributed, manual_seed, optim
    from tinygrad_edu.data import shard_bounds
    from tinygrad_edu.data_parallel import DataParallel

    variant, batch, side, classes = MODELS[model_name]
    w = distributed.world()
    manual_seed(0)
    model = AlexNet(classes, variant=variant)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    dp = DataParallel(model, opt, w, BUCKET_BYTES[model_name], overlap=overlap)
    dp.broadcast_state()
    gen = np.random.default_rng(0)
    x = gen.standard_normal((batch, 3, side, side)).astype(np.float32)
    y = gen.integers(0, classes, batch)
    lo, hi = shard_bounds(batch, w.rank, w.size)
    xs, ys, share = x[lo:hi], y[lo:hi], (hi - lo) / batch
    loss_fn = lambda o, t: o.cross_entropy(t)  # noqa: E731
    if compiled:
        grads = compile_gradient_step(model, loss_fn, opt, xs, ys)
        update = compile_update_step(model, opt, dp.offsets, dp.flat)
        zero = np.zeros((), dp.flat.dtype)
    times = []
    for _ in range(steps + 1):
        w.barrier()
        t0 = time.perf_counter()
        dp.sync_buffers()
        opt.zero_grad()
        with dp.shard(hi - lo, batch):
            if compiled and overlap:
                grads.reduce_into(dp, xs, ys, share)
            elif compiled:
                grads.set_grads(model, grads(xs, ys)[1])
                dp.reduce_gradients(share)
            elif overlap:
                dp.backward(loss_fn(model(Tensor(xs)), ys), share)
            else:
                loss_fn(model(Tensor(xs)), ys).backward()
                dp.reduce_gradients(share)
        if compiled:
            update(dp.flat, zero)
        else:
            opt.step()
        times.append(time.perf_counter() - t0)
    per_rank = np.array(times[1:])
    w.allreduce(per_rank)  # the ranks wait for each other every step: report their mean
    return float(np.median(per_rank / w.size))


def worker(args: argparse.Namespace) -> None:
    from tinygrad_edu import distributed

    w = distributed.world()
    result: dict = {}
    if w.size > 1:
        result.update(allreduce_times(SIZES if args.quick else SIZES_FULL, args.repeats))
    for model in args.models.split(","):
        steps = 3 if model == "alexnet_paper" else args.repeats
        result[model] = step_time(model, steps)
        if w.size > 1:
            result[f"{model}_overlap"] = step_time(model, steps, overlap=True)
            if model == "alexnet_mini":
                for overlap, suffix in ((False, ""), (True, "_overlap")):
                    result[f"{model}_compiled{suffix}"] = step_time(model, steps, overlap, True)
    if w.is_root:
        print(json.dumps(result), flush=True)


def launch(ranks: int, args: argparse.Namespace, models: list[str]) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--models", ",".join(models)]
    command += ["--repeats", str(args.repeats)] + (["--quick"] if args.quick else [])
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), sys.executable, "-m", "mpi4py", *command[1:]]
    log(f"{ranks} rank(s): {' '.join(command[-6:])}")
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling_model(seconds_per_image: float, images_per_machine: int = 128) -> list[dict]:
    compute = seconds_per_image * images_per_machine
    rows = []
    for gbits in (10, 100):
        for machines in (2, 4, 8, 16, 32, 64):
            comm = 2 * (machines - 1) / machines * PAPER_GRADIENT_BYTES / (gbits / 8 * 1e9)
            plain, overlapped = compute + comm, max(compute, comm)
            rows.append(
                {
                    "gbps": gbits,
                    "machines": machines,
                    "allreduce_s": rounded(comm),
                    "images_per_s": rounded(machines * images_per_machine / plain, 1),
                    "efficiency": rounded(compute / plain),
                    "images_per_s_overlap": rounded(machines * images_per_machine / overlapped, 1),
                    "efficiency_overlap": rounded(compute / overlapped),
                }
            )
    return rows


def run(args: argparse.Namespace) -> dict:
    models = ["alexnet_mini"] if args.quick else ["alexnet_mini", "alexnet_paper"]
    one = launch(1, args, models)
    time.sleep(0.5)  # BLAS threads of the last process spin for a while
    two = launch(2, args, models)
    result = {k: v for k, v in two.items() if k.startswith("allreduce")}
    for model in models:
        result[f"{model}_step_s_1ranks"] = rounded(one[model], 4)
        result[f"{model}_step_s_2ranks"] = rounded(two[model], 4)
        result[f"{model}_speedup"] = rounded(one[model] / two[model])
    for model in [*models, "alexnet_mini_compiled"]:
        plain, overlapped = two[model], two[f"{model}_overlap"]
        if model.endswith("_compiled"):
            result[f"{model}_step_s_2ranks"] = rounded(plain, 4)
        result[f"{model}_step_s_2ranks_overlap"] = rounded(overlapped, 4)
        result[f"{model}_overlap_gain"] = rounded(plain / overlapped)
    result["bucket_bytes"] = {m: BUCKET_BYTES[m] for m in models}
    # the model is of the paper AlexNet: its time per image (not measured with --quick)
    paper = one.get("alexnet_paper")
    per_image = None if paper is None else paper / MODELS["alexnet_paper"][1]
    result["scaling_seconds_per_image"] = rounded(per_image, 5)
    result["scaling"] = None if per_image is None else scaling_model(per_image)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="allreduce up to 16 MiB, mini only")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats (default 10)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--models", default="alexnet_mini", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.worker:
        worker(args)
    else:
        print_result(run, args)


if __name__ == "__main__":
    main()
