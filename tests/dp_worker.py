"""A data-parallel training run that tests/test_distributed.py launches under mpiexec.

    mpiexec -n W python -m mpi4py tests/dp_worker.py OUT MODEL DTYPE STEPS BATCH
        [--compiled] [--no-broadcast] [--overlap] [--bucket-bytes N]

Each rank initialises the model from its own seed (100 + rank), so the replicas start apart
unless `DataParallel.broadcast_state` brings them together: `--no-broadcast` is the negative
control. `--overlap` reduces the gradients while backward runs (`DataParallel.backward`);
`--bucket-bytes` sets the allreduce bucket size. Every rank writes its parameters to
OUT/rank{R}.npz after STEPS steps of global batch BATCH on the digits (epochs continue while
steps remain).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from compiler.grad_step import compile_gradient_step, compile_update_step
from models.train import build_model, prepare_digits
from tinygrad_edu import Tensor, distributed, manual_seed, optim
from tinygrad_edu.data import DataLoader
from tinygrad_edu.data_parallel import BUCKET_BYTES, DataParallel


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("model")
    p.add_argument("dtype", choices=["float32", "float64"])
    p.add_argument("steps", type=int)
    p.add_argument("batch", type=int)
    p.add_argument("--compiled", action="store_true")
    p.add_argument("--no-broadcast", action="store_true")
    p.add_argument("--overlap", action="store_true")
    p.add_argument("--bucket-bytes", type=int, default=BUCKET_BYTES)
    args = p.parse_args()
    world = distributed.world()
    manual_seed(100 + world.rank)
    model = build_model(args.model)
    for t in model.parameters():
        t.data = t.data.astype(args.dtype)
    x, y, _, _ = prepare_digits(args.model)
    x = x.astype(args.dtype)
    loader = DataLoader(
        x, y, args.batch, shuffle=True, seed=0, num_replicas=world.size, rank=world.rank
    )
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    parallel = DataParallel(model, opt, world, args.bucket_bytes, overlap=args.overlap)
    if not args.no_broadcast:
        parallel.broadcast_state()
    steps: dict = {}
    loss_fn = lambda o, t: o.cross_entropy(t)  # noqa: E731
    done, epoch = 0, 0
    while done < args.steps:
        loader.set_epoch(epoch)
        for b, (xb, yb) in enumerate(loader):
            if done == args.steps:
                break
            total = loader.global_batch_len(b)
            parallel.sync_buffers()
            opt.zero_grad()
            share = len(xb) / total
            with parallel.shard(len(xb), total):
                if args.compiled:
                    if xb.shape not in steps:
                        steps[xb.shape] = compile_gradient_step(model, loss_fn, opt, xb, yb)
                    if args.overlap:  # kernels write into the flat buffer, buckets overlap
                        steps[xb.shape].reduce_into(parallel, xb, yb, share)
                    else:
                        _, grads = steps[xb.shape](xb, yb)
                        steps[xb.shape].set_grads(model, grads)
                        parallel.reduce_gradients(share)
                elif args.overlap:  # each bucket reduced as soon as backward fills it
                    parallel.backward(loss_fn(model(Tensor(xb)), yb), share)
                else:
                    loss_fn(model(Tensor(xb)), yb).backward()
                    parallel.reduce_gradients(share)
            if args.compiled:  # the optimizer's update, compiled, on the reduced gradients
                if "update" not in steps:
                    steps["update"] = compile_update_step(
                        model, opt, parallel.offsets, parallel.flat
                    )
                steps["update"](parallel.flat, np.zeros((), parallel.flat.dtype))
            else:
                opt.step()
            done += 1
        epoch += 1
    state = {name: t.data for name, t in model.named_parameters()}
    np.savez(os.path.join(args.out, f"rank{world.rank}.npz"), **state)


if __name__ == "__main__":
    main()
