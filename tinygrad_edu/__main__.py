"""`python -m tinygrad_edu`: a two-minute tour of Value, Tensor and gradcheck."""

from __future__ import annotations

import numpy as np

from . import Tensor, Value, gradcheck, manual_seed


def main() -> None:
    print("== Value: scalar autograd and the chain-rule ledger ==")
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = (a * b + a.relu()).tanh()
    c.label = "c"
    c.backward()
    print(f"a.grad = {a.grad:.6g}, b.grad = {b.grad:.6g}")
    print(c.explain())

    print("\n== Tensor: conv -> ReLU -> max-pool, trained a few SGD steps ==")
    manual_seed(0)
    x = Tensor.randn(16, 3, 16, 16)
    y = np.arange(16) % 3
    x.data[np.arange(16), y] += 1.0  # the label is the brightest channel: learnable
    w = Tensor.randn(6, 3, 3, 3, requires_grad=True)
    w.data *= 0.3
    fc = Tensor.randn(3, 6 * 7 * 7, requires_grad=True)
    fc.data *= 0.01
    for step in range(8):
        h = x.conv2d(w, padding=1).relu().max_pool2d(3, stride=2)
        loss = h.flatten(1).linear(fc).cross_entropy(y)
        loss.backward()
        for p in (w, fc):
            p.data -= 0.001 * p.grad.data
            p.grad = None
        print(f"step {step}: loss {loss.item():.4f}")

    print("\n== gradcheck: analytical vs finite differences, float64 ==")
    r = np.random.default_rng(0)
    ok = gradcheck(
        lambda x, w: x.conv2d(w, stride=2, padding=1).max_pool2d(2).sum(),
        [r.standard_normal((2, 3, 7, 7)), r.standard_normal((4, 3, 3, 3))],
    )
    print(f"conv2d + max_pool2d gradients match finite differences: {ok}")


if __name__ == "__main__":
    main()
