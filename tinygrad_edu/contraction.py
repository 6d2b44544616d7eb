"""`einsum` as permute, reshape, sum and matmul (the engine behind `tinygrad_edu.einsum`).

Every contraction of two operands is one batched matmul: the indices both share and the
output keeps are the batch, those both share and the output drops are the inner dim, the
rest are the rows of one and the columns of the other. An index only one operand has and
nothing later needs is summed away first. Operands are folded left to right.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from .errors import op_error
from .tensor import Tensor


def _parse(equation: str, operands: list[Tensor]) -> tuple[list[str], str]:
    """One letter string per operand and the output's, with `...` spelled as fresh letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise op_error(
            "einsum",
            f"the equation has {len(terms)} operand terms but {len(operands)} tensors were given",
            equation,
            "give one comma-separated term per tensor",
        )
    spare = [c for c in string.ascii_letters if c not in eq]
    widths = []
    for term, x in zip(terms, operands):
        widths.append(x.ndim - (len(term) - 3) if "..." in term else 0)
    ell = "".join(spare[: max(widths, default=0)])
    letters = []
    for term, x, k in zip(terms, operands, widths):
        named = term.replace("...", ell[len(ell) - k :] if k else "")
        bad = [c for c in named if c not in string.ascii_letters]
        if bad or len(named) != x.ndim or k < 0:
            raise op_error(
                "einsum",
                f"term {term!r} does not match an operand of {x.ndim} dims",
                [tuple(o.shape) for o in operands],
                "use one letter per dim (or ... for several)",
            )
        if len(set(named)) != len(named):
            raise op_error(
                "einsum",
                f"index repeated within term {term!r} (a diagonal) is not supported",
                equation,
                "take the diagonal first, e.g. (x * eye(n)).sum(1)",
            )
        letters.append(named)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: sum(t.count(c) for t in letters) for c in set("".join(letters))}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    if len(set(out)) != len(out) or any(c not in "".join(letters) for c in out):
        raise op_error(
            "einsum",
            f"output {rhs!r} repeats an index or names one no operand has",
            equation,
            "list each output index once, from the inputs",
        )
    return letters, out


def _sizes(letters: list[str], operands: list[Tensor], equation: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for term, x in zip(letters, operands):
        for c, n in zip(term, x.shape):
            if sizes.get(c, 1) != 1 and n not in (1, sizes[c]):
                raise op_error(
                    "einsum",
                    f"index {c!r} has sizes {sizes[c]} and {n}",
                    [tuple(o.shape) for o in operands],
                    "make the dims that share a letter equal (or 1)",
                )
            sizes[c] = max(sizes.get(c, 1), n)
    return sizes


def _sum_out(x: Tensor, term: str, keep: set[str]) -> tuple[Tensor, str]:
    drop = tuple(i for i, c in enumerate(term) if c not in keep)
    if not drop:
        return x, term
    return x.sum(drop), "".join(c for c in term if c in keep)


def _arrange(x: Tensor, term: str, order: str) -> Tensor:
    return x.permute(tuple(term.index(c) for c in order)) if term != order else x


def _pair(a: Tensor, ta: str, b: Tensor, tb: str, needed: set[str], sizes: dict) -> Any:
    batch = "".join(c for c in ta if c in tb and c in needed)
    inner = "".join(c for c in ta if c in tb and c not in needed)
    rows = "".join(c for c in ta if c not in tb)
    cols = "".join(c for c in tb if c not in ta)

    def size(cs: str) -> int:
        return int(np.prod([sizes[c] for c in cs])) if cs else 1

    lead = tuple(sizes[c] for c in batch)
    am = _arrange(a, ta, batch + rows + inner).reshape(lead + (size(rows), size(inner)))
    bm = _arrange(b, tb, batch + inner + cols).reshape(lead + (size(inner), size(cols)))
    out = (am @ bm).reshape(lead + tuple(sizes[c] for c in rows + cols))
    return out, batch + rows + cols


def contract(equation: str, operands: list[Any]) -> Tensor:
    """Evaluate `equation` over `operands` (see `tinygrad_edu.einsum`)."""
    if not operands or not all(isinstance(x, Tensor) for x in operands):
        raise TypeError("einsum: pass the equation and one or more Tensors")
    letters, out = _parse(equation, operands)
    sizes = _sizes(letters, operands, equation)
    xs = []
    for x, term in zip(operands, letters):  # broadcast dims of size 1 against the others
        full = tuple(sizes[c] for c in term)
        xs.append(x.expand(full) if x.shape != full else x)
    terms = list(letters)
    for i in range(len(xs)):  # indices only this operand has and the output drops: sum them
        others = set(out).union(*(set(t) for j, t in enumerate(terms) if j != i))
        xs[i], terms[i] = _sum_out(xs[i], terms[i], others)
    acc, term = xs[0], terms[0]
    for k in range(1, len(xs)):
        needed = set(out).union(*(set(t) for t in terms[k + 1 :]))
        acc, term = _pair(acc, term, xs[k], terms[k], needed, sizes)
    acc, term = _sum_out(acc, term, set(out))
    return _arrange(acc, term, out)
