"""Backend selection: which implementation of an op runs for a given set of tensors."""

from __future__ import annotations

import functools
import importlib.util

import torch

from harmo_fast import _native

BACKENDS = ("torch", "cpu", "triton", "cuda")


@functools.cache
def _triton_status() -> str:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    import os

    if os.environ.get("TRITON_INTERPRET") == "1":
        return "available (interpreter mode, TRITON_INTERPRET=1: CPU tensors accepted, slow)"
    if not torch.cuda.is_available():
        return "triton is installed but no CUDA device is visible"
    return "available"


def _cuda_status() -> str:
    status = _native.module_status("_C_cuda")
    if status != "available":
        return status
    count, why = _native.cuda_module().device_count()
    if count == 0:
        return f"compiled CUDA module present, but no CUDA device ({why})"
    return "available"


@functools.cache
def _status() -> tuple[tuple[str, str], ...]:
    return (
        ("torch", "available"),
        ("cpu", _native.module_status("_C")),
        ("triton", _triton_status()),
        ("cuda", _cuda_status()),
    )


def available_backends() -> dict[str, str]:
    """Each backend name mapped to 'available' (possibly with a note) or the reason it is not."""
    return dict(_status())


def triton_interpreting() -> bool:
    """True when Triton runs in interpreter mode, where its kernels take CPU tensors."""
    return _triton_status().startswith("available (interpreter")


def resolve_backend(backend: str, device: torch.device, op: str) -> str:
    """Pick the concrete backend for `op` on tensors living on `device`.

    'auto' means: compiled CUDA, then Triton for CUDA tensors; the compiled CPU core, then the
    torch reference for CPU tensors. An explicit backend that cannot serve `device` raises.
    Memoised (backend availability is fixed per process; errors are not cached) and a constant
    under torch.compile.
    """
    if backend not in BACKENDS and backend != "auto":
        raise ValueError(f"{op}: backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    return _resolve_constant(backend, device.type, op)


@torch.compiler.assume_constant_result
def _resolve_constant(backend: str, device_type: str, op: str) -> str:
    # Dynamo must not trace the status probing (it imports modules): the answer is a constant.
    return _resolve_cached(backend, device_type, op)


@functools.cache
def _resolve_cached(backend: str, device_type: str, op: str) -> str:
    status = dict(_status())
    if backend == "auto":
        # Meta tensors (shape propagation) only make sense through the reference.
        order = {"cuda": ("cuda", "triton", "torch"), "meta": ("torch",)}.get(device_type, ("cpu", "torch"))
        return next(b for b in order if status[b].startswith("available"))
    if not status[backend].startswith("available"):
        raise RuntimeError(f"{op}: backend {backend!r} is unavailable: {status[backend]}")
    if backend == "cpu" and device_type != "cpu":
        raise ValueError(f"{op}: backend 'cpu' needs CPU tensors, got tensors on {device_type}")
    if backend == "cuda" and device_type != "cuda":
        raise ValueError(f"{op}: backend 'cuda' needs CUDA tensors, got tensors on {device_type}")
    if backend == "triton" and device_type != "cuda" and not triton_interpreting():
        raise ValueError(f"{op}: backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1), got {device_type}")
    return backend
