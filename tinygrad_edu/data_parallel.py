"""Data-parallel training: PyTorch DDP's rules for a model and its optimizer on a `World`.

    world = distributed.world()
    loader = DataLoader(x, y, batch_size, shuffle=True, num_replicas=world.size, rank=world.rank)
    dp = DataParallel(model, opt, world)
    dp.broadcast_state()                           # rank 0's weights, buffers, optimizer state
    for b, (xb, yb) in enumerate(loader):
        n, total = len(xb), loader.global_batch_len(b)
        with dp.shard(n, total):                   # dropout masks: this rank's rows
            loss = model(Tensor(xb)).cross_entropy(yb)
            opt.zero_grad()
            dp.backward(loss, n / total)           # sample-weighted mean over all ranks,
        opt.step()                                 # reduced while backward runs

(`loss.backward(); dp.reduce_gradients(n / total)` is the same without the overlap.)

The rules, and why:

- **One start.** Parameters, buffers, optimizer state and the random generator are broadcast
  from rank 0 (at start and after loading a checkpoint), so the replicas begin equal whatever
  each rank's own initialisation drew.
- **Same gradient everywhere.** Each rank's loss is the mean over its n_r samples; the global
  batch's gradient is sum_r (n_r / N) g_r. Each rank scales its gradient by n_r / N into one
  flat buffer, and the buffer is summed over ranks by allreduce in buckets (~25 MB each, in
  the order backward produces gradients: last layer first). W ranks then take exactly the
  steps one process takes on the global batch, an uneven or partial batch included, and
  every replica applies the same update to the same weights.
- **BatchNorm** (PyTorch DDP's default): batch statistics per rank; the running statistics
  and other buffers are broadcast from rank 0 before each step (`sync_buffers`).

- **Overlap** (`dp.backward(loss, share)` instead of `loss.backward()` and
  `reduce_gradients`): each parameter's post-accumulate-grad hook writes its scaled gradient
  into the flat buffer the moment backward has summed it, and each bucket's allreduce starts
  on a communication thread once its gradients are all in (`tinygrad_edu.buckets`); the
  calls, the buckets and the arithmetic are those of `reduce_gradients`, so the result is the
  same to the bit.

World size 1 runs the same code: the scale is 1 and the collectives return their input.

A model on the GPU (`device="cuda"`) gets its flat buffer on the GPU and NCCL instead of MPI
for the gradients and the broadcasts (`tinygrad_edu.nccl`), chosen from where the parameters
live; MPI still launches the ranks and carries Python objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from . import nn, optim, rng
from .buckets import BucketReducer, bucket_slices
from .data import shard_bounds
from .distributed import World, world
from .hooks import RemovableHandle
from .nccl import nccl_for, on_device
from .tensor import Tensor

__all__ = ["BUCKET_BYTES", "DataParallel"]

#: bytes per allreduce bucket (PyTorch DDP's default 25 MiB): large enough that per-message
#: latency (~5 us) is negligible, small enough to start reducing before the whole buffer is full
BUCKET_BYTES = 25 * 2**20


class DataParallel:
    """Keeps `model` and `optimizer` identical on every rank of `world` (None: `world()`).
    Gradients are reduced in buckets of `bucket_bytes`; `overlap` (None: automatic, see
    `self.overlap`) reduces them on a communication thread while backward runs."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: optim.Optimizer,
        comm: World | None = None,
        bucket_bytes: int = BUCKET_BYTES,
        overlap: bool | None = None,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.world = world() if comm is None else comm
        self.bucket_bytes = int(bucket_bytes)
        bucket_slices(1, 1, self.bucket_bytes)  # a bad size fails here, not at the first step
        #: whether `backward` reduces buckets on a communication thread while backward runs
        #: (else after it, on this thread: same calls, same result). None: when the rank has a
        #: core for that thread (`World.communication_core`: 2+ cores per rank)
        self.overlap = self.world.communication_core if overlap is None else bool(overlap)
        params = optimizer.params
        frozen = [k for k, p in enumerate(params) if not p.requires_grad]
        if frozen:
            raise ValueError(
                f"DataParallel: optimizer parameters {frozen} are frozen (requires_grad False); "
                "their slots in the flat gradient buffer would never fill. Fix: give the "
                "optimizer only what it trains: [p for p in model.parameters() if p.requires_grad]"
            )
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(
                f"DataParallel: the parameters have several dtypes {sorted(map(str, dtypes))}; "
                "one flat gradient buffer needs one. Fix: cast the model to one dtype"
            )
        on_gpu = {on_device(p.data) for p in params}
        if len(on_gpu) > 1:
            raise TypeError(
                "DataParallel: some parameters are on the GPU and some on the CPU; one flat "
                "gradient buffer lives in one place. Fix: model.to('cuda') (or 'cpu')"
            )
        #: the NCCL communicator for a model on the GPU (None: MPI, on the host)
        self.device = nccl_for(self.world) if True in on_gpu else None
        self._xp = np if self.device is None else self.device.cupy
        # the flat buffer holds the gradients last parameter first: backward produces them in
        # that order, so the first bucket is complete first
        self._order = list(reversed(range(len(params))))
        self._offsets: dict[int, int] = {}
        offset = 0
        for i in self._order:
            self._offsets[i] = offset
            offset += params[i].data.size
        self.flat = self._xp.zeros(offset, dtype=dtypes.pop())
        self._has_grad = np.zeros(len(params), dtype=np.int64)
        self._reducer: BucketReducer | None = None
        self._hooks: list[RemovableHandle] = []
        self._scale = self.flat.dtype.type(1)
        self._in_backward = False

    @property
    def offsets(self) -> list[int]:
        """Where each parameter's gradient starts in `flat`, in the optimizer's order."""
        return [self._offsets[i] for i in range(len(self.optimizer.params))]

    @property
    def every_parameter_has_grad(self) -> bool:
        """After `reduce_gradients`: whether some rank had a gradient for every parameter."""
        return bool(self._has_grad.all())

    @property
    def buckets(self) -> list[slice]:
        """The flat buffer's slices, reduced one allreduce each."""
        return bucket_slices(self.flat.size, self.flat.itemsize, self.bucket_bytes)

    def _grad_view(self, i: int) -> np.ndarray:
        p = self.optimizer.params[i]
        lo = self._offsets[i]
        return self.flat[lo : lo + p.data.size].reshape(p.data.shape)

    def broadcast_state(self) -> None:
        """Rank 0's parameters, buffers, optimizer state and random generator on every rank."""
        w = self.world
        tensors = [*self.model.parameters(), *(b for _, b in self.model.named_buffers())]
        layout = [(t.shape, t.data.dtype.str) for t in tensors]
        root_layout = w.broadcast_object(layout)
        if layout != root_layout:  # else Bcast would pair up arrays of different sizes
            differ = next(i for i, (a, b) in enumerate(zip(layout, root_layout)) if a != b)
            raise ValueError(
                f"DataParallel: rank {w.rank}'s model differs from rank 0's ({len(layout)} vs "
                f"{len(root_layout)} parameters and buffers; the first difference is number "
                f"{differ}: {layout[differ]} here, {root_layout[differ]} on rank 0). Fix: build "
                "the same model with the same arguments on every rank"
            )
        for t in tensors:
            self._broadcast(t)
        state = w.broadcast_object(self.optimizer.state_dict() if w.is_root else None)
        if not w.is_root:
            self.optimizer.load_state_dict(state)
        rng.set_state(w.broadcast_object(rng.get_state()))

    def sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP does before
        each forward: each rank's statistics come from its own shard, rank 0's are kept."""
        for _, b in self.model.named_buffers():
            self._broadcast(b)

    def _broadcast(self, t: Tensor) -> None:
        if self.device is not None and on_device(t.data):
            self.device.broadcast(t.data)
        else:
            self.world.broadcast(t)

    @contextmanager
    def shard(self, n: int, total: int) -> Iterator[None]:
        """While this rank computes on its n of a `total`-sample global batch: random
        per-sample draws (dropout masks) are its rows of the global batch's draws."""
        lo, _ = shard_bounds(total, self.world.rank, self.world.size)
        with rng.batch_shard(lo, lo + n, total):
            yield

    def reduce_gradients(self, scale: float) -> None:
        """Set each parameter's `.grad` to the sum over ranks of `scale` x its gradient (a
        rank's scale: its share n_r / N of the global batch). A parameter without a gradient
        counts as zero; it keeps `grad` None only when no rank has one (the optimizer then
        skips it, as it does without data parallelism)."""
        self._scale = self.flat.dtype.type(scale)
        for i in range(len(self.optimizer.params)):
            self._write_scaled(i)
        if self.device is not None:  # NCCL: world size 1 too, as the overlapped path
            for bucket in self.buckets:
                self.device.allreduce(self.flat[bucket], after=self.device.record())
            self.device.wait()
        elif self.world.size > 1:
            for bucket in self.buckets:
                self.world.allreduce(self.flat[bucket])
        self._publish()

    def backward(self, loss: Tensor, scale: float) -> None:
        """`loss.backward()`, then what `reduce_gradients(scale)` does, overlapped: as
        backward finishes each parameter's gradient, it goes scaled into the flat buffer, and
        each bucket's allreduce starts on a communication thread once all its gradients are
        in (buckets leave in order, last layer first). Returns when every bucket is reduced,
        `.grad` of each parameter a view of the flat buffer. The same bits as
        `loss.backward(); reduce_gradients(scale)`. One backward per step: gradients a second
        backward would add are not reduced."""
        reducer = self._bucket_reducer()
        if not self._hooks:
            self._install_hooks()
        self._scale = self.flat.dtype.type(scale)
        reducer.start(None)  # the hooks scale as they copy: one pass over each gradient
        self._in_backward = True
        try:
            loss.backward()
        except BaseException:
            reducer.abandon()
            raise
        finally:
            self._in_backward = False
        for i in range(len(self.optimizer.params)):  # parameters backward did not reach
            if not reducer.is_ready(i):
                self._write_scaled(i)
        reducer.finish()
        self._publish()

    # -- another producer of gradients (compiled kernels: compiler.grad_step) ---------------
    def grad_view(self, i: int) -> np.ndarray:
        """Parameter i's (in the optimizer's order) part of the flat buffer, in its shape:
        where a producer writes its gradient before `gradient_ready(i)`."""
        return self._grad_view(i)

    def begin_reduction(self, scale: float) -> None:
        """Start a step whose gradients someone else writes into `grad_view(i)`, unscaled;
        each bucket is multiplied by `scale` and allreduced (on the communication thread) as
        soon as `gradient_ready` has been called for every parameter it holds."""
        self._has_grad[:] = 0
        self._bucket_reducer().start(scale)

    def gradient_ready(self, i: int, present: bool = True) -> None:
        """Parameter i's gradient is in `grad_view(i)`, final for this step; `present=False`:
        it has none this step (its view must hold zeros), as `.grad` None would say."""
        self._has_grad[i] = present
        assert self._reducer is not None
        self._reducer.ready(i)

    def end_reduction(self) -> None:
        """Wait for every bucket (a parameter never made ready counts as a zero gradient),
        then each parameter's `.grad` is its view of the reduced buffer, as after
        `reduce_gradients`."""
        reducer = self._bucket_reducer()
        for i in range(len(self.optimizer.params)):
            if not reducer.is_ready(i):
                self._grad_view(i)[...] = 0
        reducer.finish()
        self._publish()

    def abandon_reduction(self) -> None:
        """After an error while producing gradients: wait for the buckets already sent, drop
        the rest, so that the next step can begin."""
        self._bucket_reducer().abandon()

    def remove_hooks(self) -> None:
        """Take out the post-accumulate-grad hooks `backward` registered on the parameters."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _install_hooks(self) -> None:
        for i, p in enumerate(self.optimizer.params):
            self._hooks.append(p.register_post_accumulate_grad_hook(self._hook_for(i)))

    def _hook_for(self, i: int) -> Callable[[Tensor], None]:
        def gradient_final(_: Tensor) -> None:
            if self._in_backward:  # a plain loss.backward() leaves the gradients alone
                self._write_scaled(i)
                assert self._reducer is not None
                self._reducer.ready(i)

        return gradient_final

    def _bucket_reducer(self) -> BucketReducer:
        if self._reducer is None:
            params = self.optimizer.params
            spans = [(self._offsets[i], self._offsets[i] + p.size) for i, p in enumerate(params)]
            threaded = self.overlap and self.world.threads_may_communicate
            self._reducer = BucketReducer(self.flat, self.buckets, spans, self.world, threaded)
        return self._reducer

    def _write_scaled(self, i: int) -> None:
        """Parameter i's gradient times this step's scale into its part of the flat buffer
        (zeros without a gradient)."""
        p = self.optimizer.params[i]
        view = self._grad_view(i)
        self._has_grad[i] = p.grad is not None
        if p.grad is None:
            view[...] = 0
        else:
            self._xp.multiply(p.grad.data, self._scale, out=view)

    def _publish(self) -> None:
        """After the buckets: which parameters some rank has a gradient for (a collective),
        and each such parameter's `.grad` a view of its reduced part of the flat buffer."""
        if self.world.size > 1:
            self.world.allreduce(self._has_grad)
        for i, p in enumerate(self.optimizer.params):
            p.grad = Tensor._make(self._grad_view(i)) if self._has_grad[i] else None
