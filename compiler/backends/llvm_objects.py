"""llvm_objects: LLVM IR text -> optimised object code, and the disk cache of objects.

This module imports nothing of the project (only the standard library and llvmlite), so it
also runs as a stand-alone worker process: llvmlite serialises LLVM calls within a process, so
a cold compile of many kernels uses the other cores only through other processes. A worker
is started as `python llvm_objects.py` (the file, not the package: importing the package would
cost the worker numpy and the whole compiler) and reads one JSON job from stdin:

    {"triple": ..., "cpu": ..., "features": ..., "cache_dir": ..., "jobs": [[key, ir], ...]}

It compiles each IR, writes the object into the cache (atomically: temp file, rename; the
assembly is made only when someone reads it, `compile_assembly`: emitting it cost a third of
a cold compile), prints `done KEY` per kernel (the parent's progress) or `error KEY MESSAGE`,
and exits.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

CACHE_MAGIC = b"TGEDUOBJ"


def target_machine(triple: str, cpu: str, features: str) -> Any:
    """An LLVM target machine at -O3 for the JIT's code model."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    if triple.split("-")[0] != llvm.get_default_triple().split("-")[0]:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=3, codemodel="jitdefault"
    )


def optimised(machine: Any, ir: str) -> Any:
    """Parse (and verify: parse_assembly does not) and run the -O3 pipeline."""
    import llvmlite.binding as llvm

    mod = llvm.parse_assembly(ir)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(machine, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def compile_object(machine: Any, ir: str) -> bytes:
    """The object code of one module."""
    return machine.emit_object(optimised(machine, ir))


def compile_assembly(machine: Any, ir: str) -> str:
    """The assembly text of one module (the same optimisation and code generation as its
    object, so the same instructions)."""
    return machine.emit_assembly(optimised(machine, ir))


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_assembly(cache_dir: str, key: str, asm: str) -> None:
    """Store the assembly of the object `key` beside it (read back by `read_cache`)."""
    try:
        os.makedirs(cache_dir, exist_ok=True)
        _atomic_write(os.path.join(cache_dir, key + ".s"), asm.encode())
    except OSError:
        pass


def write_cache(cache_dir: str, key: str, obj: bytes) -> None:
    """Store an object (with a checksum); a read-only cache only costs the disk cache."""
    try:
        os.makedirs(cache_dir, exist_ok=True)
        _atomic_write(
            os.path.join(cache_dir, key + ".o"), CACHE_MAGIC + hashlib.sha256(obj).digest() + obj
        )
    except OSError:
        pass


def write_reference(cache_dir: str, ref_key: str, ref: dict) -> None:
    """Store what a kernel rendered to (its object's key, symbol and buffer names), as JSON
    written atomically; a read-only cache only costs the rendering next time."""
    try:
        os.makedirs(cache_dir, exist_ok=True)
        _atomic_write(os.path.join(cache_dir, ref_key + ".ref"), json.dumps(ref).encode())
    except OSError:
        pass


def read_reference(cache_dir: str, ref_key: str) -> dict | None:
    """The reference stored for `ref_key`, or None when missing or unreadable (the caller
    then renders the kernel)."""
    try:
        with open(os.path.join(cache_dir, ref_key + ".ref")) as f:
            ref = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(ref, dict):
        return None
    if "numpy" in ref:
        return ref if isinstance(ref["numpy"], str) else None
    ok = isinstance(ref.get("key"), str) and isinstance(ref.get("symbol"), str)
    return ref if ok and isinstance(ref.get("names"), list) else None


def read_cache(cache_dir: str, key: str) -> tuple[bytes, str | None] | None:
    """(object, assembly or None) for `key`, or None when missing, foreign or corrupt (the
    caller then compiles again)."""
    try:
        with open(os.path.join(cache_dir, key + ".o"), "rb") as f:
            blob = f.read()
    except OSError:
        return None
    head = len(CACHE_MAGIC) + 32
    if len(blob) < head or blob[: len(CACHE_MAGIC)] != CACHE_MAGIC:
        return None
    obj = blob[head:]
    if hashlib.sha256(obj).digest() != blob[len(CACHE_MAGIC) : head]:
        return None
    try:
        with open(os.path.join(cache_dir, key + ".s")) as f:
            asm: str | None = f.read()
    except OSError:
        asm = None
    return obj, asm


def main() -> None:
    job = json.load(sys.stdin)
    machine = target_machine(job["triple"], job["cpu"], job["features"])
    for key, ir in job["jobs"]:
        try:
            obj = compile_object(machine, ir)
        except Exception as e:  # reported to the parent, which compiles it itself
            print(f"error {key} {type(e).__name__}: {e}".replace("\n", " "), flush=True)
            continue
        write_cache(job["cache_dir"], key, obj)
        print(f"done {key}", flush=True)


if __name__ == "__main__":
    main()
