"""Numbers for people: adaptive SI units ("12.3 MFLOP", "4.5 ms", "1.2 GB") and plurals."""

from __future__ import annotations

PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def si(value: float, unit: str, digits: int = 3) -> str:
    """`value` with the largest SI prefix that keeps it >= 1: si(4.2e7, "FLOP") ->
    "42 MFLOP"; `digits` significant digits."""
    if value == 0:
        return f"0 {unit}"
    for scale, prefix in PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def seconds(value: float) -> str:
    """A duration in s, ms or us, three significant digits."""
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 kernel", "2 kernels" (`many` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
