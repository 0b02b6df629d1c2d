"""Loading of the compiled modules and the raw-pointer calling convention shared by all ops."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch

# Must match harmo::DType in csrc/common/dtypes.h.
DTYPE_CODES = {
    torch.float32: 0,
    torch.float16: 1,
    torch.bfloat16: 2,
    torch.float64: 3,
    torch.int32: 4,
    torch.int64: 5,
    torch.bool: 6,
}


def dtype_code(t: torch.Tensor) -> int:
    """The csrc DType code of a tensor's element type."""
    try:
        return DTYPE_CODES[t.dtype]
    except KeyError:
        raise TypeError(f"harmo_fast: dtype {t.dtype} has no compiled kernel") from None


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
