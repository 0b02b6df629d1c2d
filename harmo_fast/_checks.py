"""Argument validation shared by the ops: every bad input becomes a Python exception that names
the argument, before any kernel sees a pointer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INDEX_DTYPES = (torch.int32, torch.int64)


def check_tensor(
    op: str,
    name: str,
    t: object,
    *,
    ndim: int | Sequence[int] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
) -> torch.Tensor:
    """Require `t` to be a tensor of an allowed rank and dtype; return it."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.dim() not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{op}: {name} must be {want}, got shape {tuple(t.shape)}")
    if dtypes is not None and t.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{op}: {name} must have dtype in ({names}), got {str(t.dtype).replace('torch.', '')}")
    return t


def check_shape(op: str, name: str, t: torch.Tensor, shape: Sequence[int]) -> None:
    """Require t.shape == shape."""
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def check_same_device(op: str, **tensors: torch.Tensor | None) -> torch.device:
    """Require every given tensor on one device; return it."""
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {v.device for v in present.values()}
    if len(devices) > 1:
        where = ", ".join(f"{k} on {v.device}" for k, v in present.items())
        raise ValueError(f"{op}: all tensors must be on one device, got {where}")
    return next(iter(devices))


def check_finite(op: str, name: str, t: torch.Tensor) -> None:
    """Require no NaN/inf in t (used where a NaN would silently poison a whole batch).

    Skipped while torch.compile traces: reading the answer back would break the graph (the
    compiled kernels inside the custom ops still check at run time)."""
    if torch.compiler.is_compiling():
        return
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{op}: {name} contains NaN or inf")


def check_positive_float(op: str, name: str, value: object) -> float:
    """Require a finite real number > 0 (e.g. a temperature); return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
    if not (0.0 < float(value) < float("inf")):
        raise ValueError(f"{op}: {name} must be finite and > 0, got {value}")
    return float(value)


def check_index_range(op: str, name: str, index: torch.Tensor, size: int) -> None:
    """Require every entry of an integer tensor in [0, size) (one min/max pass; syncs on CUDA)."""
    if index.numel() == 0:
        return
    lo, hi = torch.aminmax(index)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        raise IndexError(f"{op}: {name} must lie in [0, {size}), found {bad}")
