"""Loading of the compiled modules and the raw-pointer calling convention shared by all ops."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch

# harmo::DType in csrc/common/dtypes.h, by enum name (the modules export it as dtype_codes;
# python_tests/test_code_tables.py checks the two agree). Kept here so that the torch backend and
# the validation work without a compiled module.
DTYPE_CODES = {"f32": 0, "f16": 1, "bf16": 2, "f64": 3, "i32": 4, "i64": 5, "b8": 6}

# The DType each torch element type is read as: bool and uint8 are both one-byte 0/1 masks.
TORCH_DTYPE_NAMES = {
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.float64: "f64",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.bool: "b8",
    torch.uint8: "b8",
}


def dtype_code(t: torch.Tensor) -> int:
    """The csrc DType code of a tensor's element type."""
    try:
        return DTYPE_CODES[TORCH_DTYPE_NAMES[t.dtype]]
    except KeyError:
        raise TypeError(f"harmo_fast: dtype {t.dtype} has no compiled kernel") from None


def address(t: torch.Tensor | None) -> int:
    """A tensor's data address for the compiled core, 0 for an absent tensor."""
    return 0 if t is None else t.data_ptr()


@functools.cache
def _load(name: str) -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module(f"harmo_fast.{name}"), "available"
    except ImportError as exc:  # not built, or built for another Python
        return None, f"harmo_fast.{name} could not be imported ({exc})"


def cpu_module() -> ModuleType:
    """The compiled CPU core, or a RuntimeError saying why it is missing."""
    mod, why = _load("_C")
    if mod is None:
        raise RuntimeError(f"backend 'cpu' is unavailable: {why}; reinstall harmo_fast with a C++ compiler")
    return mod


def cuda_module() -> ModuleType:
    """The compiled CUDA core, or a RuntimeError saying why it is missing."""
    mod, why = _load("_C_cuda")
    if mod is None:
        raise RuntimeError(f"backend 'cuda' is unavailable: {why}; rebuild with nvcc on PATH (HARMO_CUDA=ON)")
    return mod


def module_status(name: str) -> str:
    """'available' or why the compiled module `name` cannot be imported."""
    return _load(name)[1]


def stream_of(t: torch.Tensor) -> int:
    """The raw CUDA stream handle the current torch stream on t's device uses."""
    return torch.cuda.current_stream(t.device).cuda_stream
