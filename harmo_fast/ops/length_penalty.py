"""length_penalty: HARMO's generalized length penalty against brevity reward hacking (docs/SPEC.md §1).

Within each group, L* is the length of the shortest correct response. An incorrect response with
L < L* gets -p_max * g(d; tau), d = (L* - L) / L*, g = linear min(1, d/tau) | exp 1 - exp(-d/tau) |
step 1[d >= tau]. Every other response gets 0, and so does every response of a group without a
correct one. Output float32 (N,); d and g are computed in float64 so every backend decides the
boundary d == tau the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

import torch

from harmo_fast import _checks, _dispatch, _native
from harmo_fast.ops import _groups

OP = "length_penalty"


class Shape(NamedTuple):
    code: int  # csrc/length_penalty/length_penalty_math.h Shape
    g: Callable[[torch.Tensor, float], torch.Tensor]  # g(d, tau) in float64


SHAPES = {
    "linear": Shape(0, lambda d, tau: torch.clamp(d / tau, max=1.0)),
    "exp": Shape(1, lambda d, tau: 1.0 - torch.exp(-d / tau)),
    "step": Shape(2, lambda d, tau: (d >= tau).to(d.dtype)),
}

_NO_ANCHOR = torch.iinfo(torch.int64).max


# --- the reference: the definition of correct ---


def length_penalty_reference(
    lengths: torch.Tensor,
    correct: torch.Tensor,
    group_size: int | None = None,
    group_ids: torch.Tensor | None = None,
    p_max: float = 0.5,
    tau: float = 0.5,
    shape: str = "linear",
) -> torch.Tensor:
    """Readable torch: the anchor per group by a masked min, the penalty in float64."""
    segments = _groups.Segments(lengths.shape[0], group_size, group_ids, lengths.device)
    length = lengths.to(torch.int64)
    anchor = segments.expand(segments.amin(torch.where(correct, length, _NO_ANCHOR), _NO_ANCHOR))
    has_anchor = segments.expand(segments.sum(correct.to(torch.int64)) > 0)
    penalised = ~correct & has_anchor & (length < anchor)
    d = (anchor - length).to(torch.float64) / anchor.to(torch.float64)
    # 0.0 - x rather than -x: a zero penalty is +0, never -0.
    return torch.where(penalised, 0.0 - p_max * SHAPES[shape].g(d, tau), 0.0).to(torch.float32)


# --- validation (static: shapes, dtypes, devices, options; negative lengths are checked at run time) ---


def _validate(
    lengths: object, correct: object, group_size: object, group_ids: object, p_max: object, tau: object, shape: object
) -> torch.device:
    _checks.check_tensor(OP, "lengths", lengths, ndim=1, dtypes=_checks.INDEX_DTYPES)
    _checks.check_tensor(OP, "correct", correct, ndim=1, dtypes=(torch.bool,))
    _checks.check_shape(OP, "correct", correct, lengths.shape)
    device = _checks.check_same_device(OP, lengths=lengths, correct=correct)
    _groups.check_grouping(OP, lengths.shape[0], device, group_size, group_ids)
    if isinstance(p_max, bool) or not isinstance(p_max, (int, float)) or not (p_max >= 0 and math.isfinite(p_max)):
        raise ValueError(f"{OP}: p_max must be a finite number >= 0, got {p_max!r}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"{OP}: tau must be a finite number > 0, got {tau!r}")
    if shape not in SHAPES:
        raise ValueError(f"{OP}: shape must be one of {', '.join(map(repr, SHAPES))}; got {shape!r}")
    return device


def _check_nonnegative(lengths: torch.Tensor) -> None:
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"{OP}: lengths must be >= 0, got {int(lengths.min())}")


# --- per-backend launchers: (lengths, correct, layout, p_max, tau, shape code) -> fp32 (N,) ---


def _kernel_arguments(
    lengths: torch.Tensor,
    correct: torch.Tensor,
    out: torch.Tensor,
    groups: _groups.GroupLayout,
    p_max: float,
    tau: float,
    shape: int,
) -> dict:
    """The compiled length_penalty's keyword arguments (both cores share them)."""
    return dict(
        lengths=lengths.data_ptr(),
        dtype=_native.dtype_code(lengths),
        correct=correct.data_ptr(),
        out=out.data_ptr(),
        n=lengths.shape[0],
        **_groups.kernel_arguments(groups),
        p_max=p_max,
        tau=tau,
        shape=shape,
    )


def _cpu(
    lengths: torch.Tensor, correct: torch.Tensor, groups: _groups.GroupLayout, p_max: float, tau: float, shape: int
) -> torch.Tensor:
    out = torch.empty(lengths.shape[0], dtype=torch.float32)
    # The kernel checks lengths >= 0 itself (one pass before the parallel region, ValueError).
    _native.cpu_module().length_penalty(**_kernel_arguments(lengths, correct, out, groups, p_max, tau, shape))
    return out


def _cuda(
    lengths: torch.Tensor, correct: torch.Tensor, groups: _groups.GroupLayout, p_max: float, tau: float, shape: int
) -> torch.Tensor:
    _check_nonnegative(lengths)
    out = torch.empty(lengths.shape[0], dtype=torch.float32, device=lengths.device)
    with torch.cuda.device(lengths.device):
        _native.cuda_module().length_penalty(
            **_kernel_arguments(lengths, correct, out, groups, p_max, tau, shape), stream=_native.stream_of(lengths)
        )
    return out


def _triton(
    lengths: torch.Tensor, correct: torch.Tensor, groups: _groups.GroupLayout, p_max: float, tau: float, shape: int
) -> torch.Tensor:
    from harmo_fast.triton_kernels import length_penalty as kernels

    _check_nonnegative(lengths)
    return kernels.length_penalty(lengths, correct, groups, p_max, tau, _SHAPE_NAMES[shape])


_LAUNCHERS = {"cpu": _cpu, "cuda": _cuda, "triton": _triton}
# The Triton kernel chooses its variant from the shape's name, so it holds no copy of the codes.
_SHAPE_NAMES = {s.code: name for name, s in SHAPES.items()}


def _run(
    lengths: torch.Tensor,
    correct: torch.Tensor,
    group_size: int | None,
    group_ids: torch.Tensor | None,
    p_max: float,
    tau: float,
    shape: str,
    backend: str,
) -> torch.Tensor:
    """Validated arguments and a resolved backend in, penalties out."""
    n = lengths.shape[0]
    if lengths.device.type == "meta":
        return torch.zeros(n, dtype=torch.float32, device=lengths.device)
    if backend == "torch":
        _check_nonnegative(lengths)
        return length_penalty_reference(lengths, correct, group_size, group_ids, p_max, tau, shape)
    if n == 0:
        return torch.zeros(0, dtype=torch.float32, device=lengths.device)
    groups = _groups.layout(n, group_size, group_ids)
    return _LAUNCHERS[backend](lengths.contiguous(), correct.contiguous(), groups, p_max, tau, SHAPES[shape].code)


# --- the custom op: the one path, eager and under torch.compile ---


@torch.library.custom_op("harmo_fast::length_penalty", mutates_args=())
def _length_penalty_op(
    lengths: torch.Tensor,
    correct: torch.Tensor,
    group_size: int | None,
    group_ids: torch.Tensor | None,
    p_max: float,
    tau: float,
    shape: str,
    backend: str,
) -> torch.Tensor:
    return _run(lengths, correct, group_size, group_ids, p_max, tau, shape, backend)


@_length_penalty_op.register_fake
def _length_penalty_fake(lengths, correct, group_size, group_ids, p_max, tau, shape, backend):
    return lengths.new_empty(lengths.shape[0], dtype=torch.float32)


# --- the public op ---


def length_penalty(
    lengths: torch.Tensor,
    correct: torch.Tensor,
    group_size: int | None = None,
    group_ids: torch.Tensor | Sequence[Hashable] | None = None,
    p_max: float = 0.5,
    tau: float = 0.5,
    shape: str = "linear",
    backend: str = "auto",
) -> torch.Tensor:
    """Length penalty (N,) float32 of responses with lengths (N,) int32/int64 (>= 0) and correct (N,) bool.

    Groups: exactly one of group_size (contiguous, N % G == 0) or group_ids ((N,) int tensor, numpy
    array or sequence of hashable ids; any order, ragged). shape: "linear", "exp" or "step"; p_max >= 0, tau > 0.
    """
    _checks.check_tensor(OP, "lengths", lengths, ndim=1, dtypes=_checks.INDEX_DTYPES)
    group_ids = _groups.as_group_ids(OP, group_ids, lengths.device)
    device = _validate(lengths, correct, group_size, group_ids, p_max, tau, shape)
    backend = _dispatch.resolve_backend(backend, device, OP)
    return _length_penalty_op(lengths, correct, group_size, group_ids, float(p_max), float(tau), shape, backend)
