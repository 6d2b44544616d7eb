"""`python -m compiler inspect MODEL|module:function [--train] [--backend B] [--batch N]
[--repeats N] [--report out.html]`
`python -m compiler drift MODEL [--backend B] [--dtype float32|float64] [--steps N]`
`python -m compiler export MODEL|module:function OUT.onnx [--batch N] [--shape C,H,W]
    [--weights FILE] [--static] [--opset K]`
`python -m compiler screenshot report.html out.png [--size 1400x900] [--view VIEW]`

`inspect` compiles a model from `models/`, or the one a factory of yours returns
(`module:function`, a function of no arguments returning `(model, example_input)` or
`(model, example_input, example_target)`), for inference or with `--train` the whole training
step, and prints what the compiler did: node and kernel counts, pass times, the memory plan, a
kernel table (warm: one warm-up call, then the median of `--repeats` calls per kernel, slowest
first, with each kernel's share and % of this machine's peak) and (with `-v`) every fusion
decision and the kernel IR.
`drift` trains the model eagerly and compiled side by side (`compiler.drift`) and reports the
first step, value and kernel where their numbers differ. `export` writes the model as ONNX
(`compiler.export_onnx`): MODEL is one of `models/` or `module:function`, a function of no
arguments returning a module or (module, example input); `--weights` loads a `.npz` or
`.safetensors` state_dict first.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import compiler
from compiler.drift import DriftReport, compare
from compiler.roofline import machine_for
from compiler.timing import profile
from models import MLP, AlexNet, LogisticRegression, zoo
from tinygrad_edu import manual_seed, nn, optim

MODELS = {
    "logreg": (lambda: LogisticRegression(64, 10), (64,), 10),
    "mlp": (lambda: MLP([64, 128, 64, 10]), (64,), 10),
    "alexnet": (lambda: AlexNet(1000, "paper"), (3, 227, 227), 1000),
    "alexnet-torchvision": (lambda: AlexNet(1000, "torchvision"), (3, 224, 224), 1000),
    "alexnet-mini": (lambda: AlexNet(10, "mini"), (3, 32, 32), 10),
}
# torchvision's classic CNNs at their standard 224x224, 1000 classes
MODELS.update({name: (make, (3, 224, 224), 1000) for name, make in zoo.MODELS.items()})


def load_factory(spec: str) -> tuple[nn.Module, np.ndarray, np.ndarray | None]:
    """(model, example input, example target or None) from `module:function`."""
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise SystemExit(
            f"inspect: {spec!r} is neither a built-in model ({', '.join(sorted(MODELS))}) nor "
            "module:function. Fix: name a model or a factory such as mypkg.nets:make_net"
        )
    try:
        factory = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as e:
        raise SystemExit(
            f"inspect: cannot load {spec!r}: {e}. Fix: check the module path "
            "(run from the directory that holds it) and the function name"
        ) from e
    made = factory()
    if not isinstance(made, tuple) or len(made) not in (2, 3):
        raise SystemExit(
            f"inspect: {spec} returned {type(made).__name__}; it must return (model, "
            "example_input) or (model, example_input, example_target)"
        )
    model, x = made[0], np.asarray(made[1])
    y = np.asarray(made[2]) if len(made) == 3 else None
    return model, x, y


def _example_target(model: Any, x: np.ndarray) -> np.ndarray:
    """Class labels for a training step of a classifier: as many as the output has rows."""
    traced = compiler.trace(model, x)
    shape = traced.node(traced.outputs[0])["shape"]
    classes = shape[-1] if len(shape) > 1 else 1
    return np.arange(shape[0] if shape else 1) % max(classes, 1)


def inspect_model(
    name: str,
    train: bool,
    backend: str | None,
    batch: int,
    report: str | None,
    verbose: bool,
    run: bool,
    repeats: int = 3,
    warmup: int = 1,
) -> compiler.CompiledFunction:
    manual_seed(0)
    rng = np.random.default_rng(0)
    if name in MODELS:
        make, shape, classes = MODELS[name]
        model: nn.Module = make()
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        y = rng.integers(0, classes, batch)
    else:
        model, x, target = load_factory(name)
        batch = x.shape[0] if x.ndim else 1
        y = target if target is not None or not train else _example_target(model, x)
    if train:
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        step = compiler.compile_train_step(
            model, lambda o, t: o.cross_entropy(t), opt, x, y, backend=backend
        )
        compiled = step.compiled
        if run:
            print(f"loss after one compiled step: {step(x, y):.4f}")
            profile(compiled, lambda: step(x, y), repeats, warmup)
    else:
        if isinstance(model, nn.Module):
            model.eval()
        compiled = compiler.compile(model, x, backend=backend)
        if run:
            profile(compiled, lambda: compiled(x), repeats, warmup)
    what = "training step" if train else "inference"
    print(f"== {name} {what}, batch {batch}, backend {compiled.backend}")
    print(compiled.summary())
    machine = machine_for(compiled.backend) if run else None
    if run:
        print(compiled.timing_table(machine=machine))
    if verbose:
        print(compiled.explain_fusion())
        for k in compiled.kernels:
            print(k.pseudo_c())
    if report:
        print(f"report written to {compiled.report(report, machine)}")
    return compiled


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=5e-4),
    "adam": lambda ps: optim.Adam(ps, lr=1e-3, weight_decay=1e-4),
}


def drift_model(
    name: str, backend: str, dtype: str, steps: int, batch: int, optimizer: str
) -> DriftReport:
    make, shape, classes = MODELS[name]
    rng = np.random.default_rng(0)
    batches = [
        (rng.standard_normal((batch, *shape)), rng.integers(0, classes, batch))
        for _ in range(steps)
    ]
    report = compare(
        make, lambda o, t: o.cross_entropy(t), OPTIMIZERS[optimizer], batches, backend, dtype
    )
    print(report)
    return report


def _resolve_model(spec: str, shape: tuple[int, ...] | None, batch: int) -> tuple[Any, Any]:
    """(model, example) for `export`: a model of `models/`, or `module:function`."""
    if spec in MODELS:
        make, default_shape, _ = MODELS[spec]
        manual_seed(0)
        model, example = make(), None
        shape = shape or default_shape
    else:
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise SystemExit(
                f"export: {spec!r} is neither a model ({', '.join(sorted(MODELS))}) nor "
                "module:function. Fix: name one of those"
            )
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise SystemExit(f"export: cannot load {spec!r} ({e}). Fix: check the name") from None
        made = obj if isinstance(obj, nn.Module) else obj()
        model, example = made if isinstance(made, tuple) else (made, None)
    if example is None:
        if shape is None:
            raise SystemExit(
                f"export: {spec!r} gives no example input. Fix: pass --shape C,H,W "
                "(the input's shape without the batch), or return (model, example)"
            )
        example = np.zeros((batch, *shape), np.float32)
    return model, example


def export_model(
    spec: str,
    out: str,
    batch: int,
    shape: tuple[int, ...] | None,
    weights: str | None,
    dynamic: bool,
    opset: int,
) -> None:
    from compiler.onnx_export import export_onnx

    model, example = _resolve_model(spec, shape, batch)
    if weights:
        model.load_state_dict(nn.load(weights))
    proto = export_onnx(model, example, out, dynamic_batch=dynamic, opset=opset)
    graph = proto.graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    print(
        f"wrote {out}: {len(graph.node)} nodes, {len(graph.initializer)} initializers, "
        f"opset {opset}, input {dims}"
    )


def _shape_arg(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 3,32,32, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m compiler", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="compile a model and show what the compiler did")
    ins.add_argument(
        "model",
        metavar="MODEL",
        help=f"a built-in model ({', '.join(sorted(MODELS))}) or module:function, a factory "
        "returning (model, example_input[, example_target])",
    )
    ins.add_argument("--train", action="store_true", help="compile the whole training step")
    ins.add_argument(
        "--repeats", type=int, default=3, help="timed calls per kernel after the warm-up (3)"
    )
    ins.add_argument("--warmup", type=int, default=1, help="untimed calls first (1)")
    ins.add_argument(
        "--backend",
        default=None,
        choices=compiler.BACKENDS,
        help="default: llvm where llvmlite is installed, else numpy",
    )
    ins.add_argument("--batch", type=int, default=2, help="batch of a built-in model (2)")
    ins.add_argument("--report", help="write a self-contained HTML report here")
    ins.add_argument("--no-run", action="store_true", help="compile only; do not time a call")
    ins.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every fusion decision and each kernel's IR",
    )
    dr = sub.add_parser("drift", help="where compiled training first differs from eager")
    dr.add_argument("model", choices=sorted(MODELS))
    dr.add_argument("--backend", default="numpy", choices=("numpy", "llvm"))
    dr.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    dr.add_argument("--steps", type=int, default=1)
    dr.add_argument("--batch", type=int, default=8)
    dr.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS))
    ex = sub.add_parser("export", help="write a model as ONNX")
    ex.add_argument("model", help=f"one of {', '.join(sorted(MODELS))}, or module:function")
    ex.add_argument("out", help="the .onnx file to write (atomically)")
    ex.add_argument("--batch", type=int, default=1, help="the example's batch (default 1)")
    ex.add_argument("--shape", type=_shape_arg, help="input shape without the batch, e.g. 3,32,32")
    ex.add_argument("--weights", help="a .npz or .safetensors state_dict to load first")
    ex.add_argument("--static", action="store_true", help="a fixed batch instead of a dynamic one")
    ex.add_argument("--opset", type=int, default=18)
    shot = sub.add_parser("screenshot", help="a PNG of a report's first screen (headless Chromium)")
    shot.add_argument("report", help="the HTML report")
    shot.add_argument("png", help="where to write the PNG")
    shot.add_argument("--size", default="1400x900", help="window WIDTHxHEIGHT (1400x900)")
    shot.add_argument(
        "--view",
        default="",
        help='what the report shows first: "all", "find=TEXT", "open=K", "at=K", joined by &',
    )
    args = p.parse_args(argv)
    if getattr(args, "batch", 1) < 1:
        p.error("--batch must be >= 1")
    if args.command == "export":
        export_model(
            args.model, args.out, args.batch, args.shape, args.weights, not args.static, args.opset
        )
        return
    if args.command == "drift":
        if args.steps < 1:
            p.error("--steps must be >= 1")
        drift_model(args.model, args.backend, args.dtype, args.steps, args.batch, args.optimizer)
        return
    if args.command == "screenshot":
        from compiler.screenshot import screenshot

        width, _, height = args.size.partition("x")
        print(screenshot(args.report, args.png, int(width), int(height), args.view))
        return
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    inspect_model(
        args.model,
        args.train,
        args.backend,
        args.batch,
        args.report,
        args.verbose,
        not args.no_run,
        args.repeats,
        args.warmup,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
