"""Weight files: `.npz` and `.safetensors`, chosen by extension, written atomically, no pickle.

`nn.save` and `nn.load` call `save_state` and `load_state`. safetensors (Hugging Face's format:
a JSON header of names, dtypes and shapes, then the raw little-endian bytes) is what PyTorch
and most model hubs use to share weights without pickle, so a torchvision state_dict written
with `safetensors.torch.save_file` loads here with `nn.load` and `load_state_dict`.

Every write goes to a temporary file in the target's directory, is flushed and fsynced, and is
then renamed over the target: a crash or an error mid-write leaves the previous file intact.
`load_state` returns a `StateDict`, a dict that remembers the file it came from, so a
`load_state_dict` that does not fit names the file.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping

import numpy as np

EXTENSIONS = (".npz", ".safetensors")


class StateDict(dict):
    """A name -> array mapping read from a file; `source` is that file's path."""

    source: str = ""


def _format_of(path: str, what: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise ValueError(
            f"{what}: {path!s} has the unknown extension {ext or '(none)'!r}. "
            f"Fix: name the file *.npz (numpy) or *.safetensors (safetensors)"
        )
    return ext


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` to fill a temporary file next to `path`, fsync it, then rename it
    over `path`. On any error the temporary file is removed and `path` is left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _contiguous(state: Mapping[str, np.ndarray], path: str, kinds: str) -> dict[str, np.ndarray]:
    arrays = {}
    for name, value in state.items():
        array = np.asarray(value)
        if array.dtype.kind not in kinds:
            what = "bool, int or float arrays" + (" or strings" if "U" in kinds else "")
            raise ValueError(
                f"save: {name!r} has dtype {array.dtype}, which {path!s} cannot hold without "
                f"pickle. Fix: store {what} only"
            )
        # safetensors writes the raw buffer: a strided view would be saved scrambled
        # (ascontiguousarray would turn a 0-d array into a 1-d one)
        arrays[str(name)] = array if array.flags.c_contiguous else array.copy(order="C")
    return arrays


def save_state(state: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Write `state` (name -> array) to `path`, `.npz` or `.safetensors` by extension."""
    path = os.fspath(path)
    ext = _format_of(path, "save")
    if ext == ".safetensors":
        from safetensors.numpy import save_file

        tensors = _contiguous(state, path, "biuf")
        atomic_write(path, lambda tmp: save_file(tensors, tmp))
        return
    arrays = _contiguous(state, path, "biufUS")  # .npz also holds strings (JSON metadata)

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: savez appends no extension
            np.savez(f, **arrays)

    atomic_write(path, write_npz)


def _load_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"load: {path!s} is not a readable .npz checkpoint ({e}). Fix: the file is "
            "truncated or not written by nn.save; write it again"
        ) from None


def _load_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            out = {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                try:
                    out[key] = f.get_tensor(key)
                except TypeError as e:  # a dtype numpy lacks (bfloat16, float8)
                    raise ValueError(
                        f"load: tensor {key!r} in {path!s} has a dtype numpy cannot hold ({e}). "
                        "Fix: save it as float32, e.g. safetensors.torch.save_file("
                        "{k: v.float() for k, v in state_dict.items()}, path)"
                    ) from None
            return out
    except SafetensorError as e:
        raise ValueError(
            f"load: {path!s} is not a readable .safetensors file ({e}). Fix: the file is "
            "truncated or corrupt; write it again (nn.save or safetensors' save_file)"
        ) from None


def load_state(path: str | os.PathLike[str]) -> StateDict:
    """Read a `.npz` or `.safetensors` file into a `StateDict` (no pickle)."""
    path = os.fspath(path)
    ext = _format_of(path, "load")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path!s}")
    arrays = _load_safetensors(path) if ext == ".safetensors" else _load_npz(path)
    state = StateDict(arrays)
    state.source = path
    return state
