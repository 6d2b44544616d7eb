"""asm: reading the assembly the LLVM backend emits, to check what a schedule promised.

A register-tiled micro-kernel is only fast if its innermost loop is what the tile intended:
fused multiply-adds on the target's vector registers, and no accumulator spilled to the stack.
`hot_loop` finds that loop (the one with the most FMAs per instruction) in AT&T x86 or AArch64
assembly, and `LoopStats` counts what is in it. The tests use it on every target the host can
build for; a student can use it on any kernel (`hot_loop(kernel.asm)`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LABEL = re.compile(r"^([.\w$]+):")
BRANCH = re.compile(r"^\s*(j\w+|b(?:\.\w+)?|cbn?z|tbn?z)\s+(?:[^,]*,\s*)*([.\w$]+)\s*$")
FMA = re.compile(r"^\s*(vfn?m(add|sub)\d{3}[ps]s|fmla|fmadd)\b")
# multiplies and adds of vectors, for targets without FMA (SSE)
VECTOR_ARITH = re.compile(r"^\s*(v?(mul|add)ps|fmul|fadd)\b")
# a vector register stored to memory (AT&T: source first; AArch64: str/stp of q/v registers)
VECTOR_STORE = re.compile(r"^\s*(v?mov[au]ps\s+%[xyz]mm\d+,\s*\S*\(|st[rp]\s+q\d+)")
ARM_STACK = re.compile(r"\[(sp|x29)\b")


@dataclass(frozen=True)
class LoopStats:
    """What one loop of assembly does."""

    instructions: int
    fmas: int
    stack_accesses: int  # loads/stores relative to the stack (or frame) pointer: spills
    vector_stores: int  # a micro-kernel's inner loop stores nothing: its tile is in registers
    gathers: int
    registers: frozenset[str]  # vector register classes used: zmm, ymm, xmm, v

    def __str__(self) -> str:
        return (
            f"{self.instructions} instructions, {self.fmas} FMAs, {self.stack_accesses} stack "
            f"accesses, {self.vector_stores} vector stores, {self.gathers} gathers/scatters, "
            f"registers {sorted(self.registers)}"
        )


def _instructions(asm: str) -> list[str]:
    out = []
    for line in asm.splitlines():
        code = line.split("#")[0].split("//")[0].rstrip()
        stripped = code.strip()
        if not stripped or (stripped.startswith(".") and not LABEL.match(stripped)):
            continue  # directives
        out.append(code)
    return out


def loops(asm: str) -> list[list[str]]:
    """Every loop: the instructions from a label to a branch back to it."""
    lines = _instructions(asm)
    where: dict[str, int] = {}
    found = []
    for i, line in enumerate(lines):
        m = LABEL.match(line.strip())
        if m:
            where[m.group(1)] = i
            continue
        b = BRANCH.match(line)
        if b and b.group(2) in where and where[b.group(2)] < i:
            body = [x for x in lines[where[b.group(2)] + 1 : i + 1] if not LABEL.match(x.strip())]
            found.append(body)
    return found


def stats(body: list[str], frame_pointer: bool = False) -> LoopStats:
    """Counts over one loop; `frame_pointer`: %rbp addresses the frame (else it may be an
    ordinary pointer register, as LLVM uses it when frame pointers are omitted)."""
    x86_stack = re.compile(r"\((%rsp|%rbp)" if frame_pointer else r"\(%rsp")
    registers: set[str] = set()
    for line in body:
        for reg in re.findall(r"%(zmm|ymm|xmm)\d+", line):
            registers.add(reg)
        if re.search(r"\bv\d+\.(4s|2d|8h|16b)", line):
            registers.add("v")
    return LoopStats(
        instructions=len(body),
        fmas=sum(bool(FMA.match(x)) for x in body),
        stack_accesses=sum(bool(x86_stack.search(x) or ARM_STACK.search(x)) for x in body),
        vector_stores=sum(bool(VECTOR_STORE.match(x)) for x in body),
        gathers=sum(("gather" in x or "scatter" in x) for x in body),
        registers=frozenset(registers),
    )


def hot_loop(asm: str) -> LoopStats | None:
    """The loop with the highest share of vector arithmetic (fused multiply-adds, or
    multiplies and adds without FMA): a micro-kernel's inner loop. None when no loop has any."""
    frame_pointer = bool(re.search(r"mov\w*\s+%rsp,\s*%rbp", asm))
    best: tuple[float, int, LoopStats] | None = None
    for body in loops(asm):
        arith = sum(bool(FMA.match(x) or VECTOR_ARITH.match(x)) for x in body)
        if arith == 0:
            continue
        key = (arith / len(body), arith)
        if best is None or key > best[:2]:
            best = (*key, stats(body, frame_pointer))
    return best[2] if best else None
