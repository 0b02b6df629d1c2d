"""group_advantages: group-relative advantages of N rewards (docs/SPEC.md §2).

scale="none" (HARMO default): A = R - mean_g. "group": (R - mean_g) / (std_g + eps). "batch": group
mean, std over the whole batch. std is unbiased (Bessel) unless unbiased=False. NaN rewards are left
out of every statistic and get A = 0; a group with a single (non-NaN) reward gets 0; a group whose
rewards are all equal gets exactly 0. Output float32, no gradient (rewards are not differentiable:
the result is always detached).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch

from harmo_fast import _checks, _dispatch, _native
from harmo_fast.ops import _groups

OP = "group_advantages"

# Scale modes and their kernel codes (csrc/group_advantages/group_advantages_math.h Scale).
SCALES = {"none": 0, "group": 1, "batch": 2}


# --- the reference: the definition of correct ---


def _std(m2: torch.Tensor, count: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """std from the sum of squared deviations; 0 where undefined (<= 1 value, or none)."""
    dof = count - 1 if unbiased else count
    return torch.where(dof > 0, torch.sqrt(m2 / dof.clamp(min=1)), torch.zeros_like(m2))


def group_advantages_reference(
    rewards: torch.Tensor,
    group_size: int | None = None,
    group_ids: torch.Tensor | None = None,
    scale: str = "none",
    eps: float = 1e-6,
    unbiased: bool = True,
) -> torch.Tensor:
    """Readable float64 torch, two-pass statistics per group.

    A sum of k equal fp32 values is exact in float64 (k < 2**29), so the mean of an all-equal group
    equals the value and its centred rewards are exactly 0.
    """
    segments = _groups.Segments(rewards.shape[0], group_size, group_ids, rewards.device)
    r = rewards.detach().to(torch.float64)
    present = ~torch.isnan(r)
    count = segments.sum(present.to(torch.float64))
    mean = segments.sum(torch.where(present, r, 0.0)) / count.clamp(min=1)
    centred = torch.where(present, r - segments.expand(mean), 0.0)
    if scale == "none":
        return centred.to(torch.float32)
    if scale == "group":
        std = segments.expand(_std(segments.sum(centred * centred), count, unbiased))
    else:
        valid = r[present]
        m2 = ((valid - valid.mean()) ** 2).sum() if valid.numel() else valid.new_zeros(())
        std = _std(m2, torch.tensor(float(valid.numel()), dtype=torch.float64, device=r.device), unbiased)
    denom = std + eps
    return torch.where(denom > 0, centred / denom, 0.0).to(torch.float32)


# --- validation (static: shapes, dtypes, devices, options) ---


def _validate(rewards: object, group_size: object, group_ids: object, scale: object, eps: object) -> torch.device:
    _checks.check_tensor(OP, "rewards", rewards, ndim=1, dtypes=_checks.FLOAT_DTYPES)
    _groups.check_grouping(OP, rewards.shape[0], rewards.device, group_size, group_ids)
    if scale not in SCALES:
        raise ValueError(f"{OP}: scale must be one of {', '.join(map(repr, SCALES))}; got {scale!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"{OP}: eps must be a finite number >= 0, got {eps!r}")
    return rewards.device


# --- per-backend launchers: (rewards contiguous, layout, scale code, eps, unbiased) -> fp32 (N,) ---


def _kernel_arguments(
    rewards: torch.Tensor, out: torch.Tensor, groups: _groups.GroupLayout, scale: int, eps: float, unbiased: bool
) -> dict:
    """The compiled group_advantages' keyword arguments (both cores share them)."""
    return dict(
        rewards=rewards.data_ptr(),
        dtype=_native.dtype_code(rewards),
        out=out.data_ptr(),
        n=rewards.shape[0],
        **_groups.kernel_arguments(groups),
        scale=scale,
        eps=eps,
        unbiased=unbiased,
    )


def _cpu(rewards: torch.Tensor, groups: _groups.GroupLayout, scale: int, eps: float, unbiased: bool) -> torch.Tensor:
    out = torch.empty(rewards.shape[0], dtype=torch.float32)
    _native.cpu_module().group_advantages(**_kernel_arguments(rewards, out, groups, scale, eps, unbiased))
    return out


def _cuda(rewards: torch.Tensor, groups: _groups.GroupLayout, scale: int, eps: float, unbiased: bool) -> torch.Tensor:
    out = torch.empty(rewards.shape[0], dtype=torch.float32, device=rewards.device)
    module = _native.cuda_module()
    size = module.group_advantages_workspace(num_groups=groups.num_groups, scale=scale)
    workspace = torch.empty(size, dtype=torch.float64, device=rewards.device)
    with torch.cuda.device(rewards.device):
        module.group_advantages(
            **_kernel_arguments(rewards, out, groups, scale, eps, unbiased),
            workspace=_native.address(workspace),
            stream=_native.stream_of(rewards),
        )
    return out


def _triton(rewards: torch.Tensor, groups: _groups.GroupLayout, scale: int, eps: float, unbiased: bool) -> torch.Tensor:
    from harmo_fast.triton_kernels import group_advantages as kernels

    return kernels.group_advantages(rewards, groups, _SCALE_NAMES[scale], eps, unbiased)


_LAUNCHERS = {"cpu": _cpu, "cuda": _cuda, "triton": _triton}
# The Triton kernels choose their variant from the scale's name, so they hold no copy of the codes.
_SCALE_NAMES = {code: name for name, code in SCALES.items()}


def _run(
    rewards: torch.Tensor,
    group_size: int | None,
    group_ids: torch.Tensor | None,
    scale: str,
    eps: float,
    unbiased: bool,
    backend: str,
) -> torch.Tensor:
    """Validated arguments and a resolved backend in, advantages out."""
    if backend == "torch":
        return group_advantages_reference(rewards, group_size, group_ids, scale, eps, unbiased)
    n = rewards.shape[0]
    if n == 0 or rewards.device.type == "meta":
        return torch.zeros(n, dtype=torch.float32, device=rewards.device)
    groups = _groups.layout(n, group_size, group_ids)
    return _LAUNCHERS[backend](rewards.contiguous(), groups, SCALES[scale], eps, unbiased)


# --- the custom op: the one path, eager and under torch.compile ---


@torch.library.custom_op("harmo_fast::group_advantages", mutates_args=())
def _group_advantages_op(
    rewards: torch.Tensor,
    group_size: int | None,
    group_ids: torch.Tensor | None,
    scale: str,
    eps: float,
    unbiased: bool,
    backend: str,
) -> torch.Tensor:
    return _run(rewards, group_size, group_ids, scale, eps, unbiased, backend)


@_group_advantages_op.register_fake
def _group_advantages_fake(rewards, group_size, group_ids, scale, eps, unbiased, backend):
    return rewards.new_empty(rewards.shape[0], dtype=torch.float32)


# --- the public op ---


def group_advantages(
    rewards: torch.Tensor,
    group_size: int | None = None,
    group_ids: torch.Tensor | Sequence[Hashable] | None = None,
    scale: str = "none",
    eps: float = 1e-6,
    unbiased: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """Group-relative advantages (N,) float32 of rewards (N,) fp32/bf16/fp16.

    Groups: exactly one of group_size (contiguous groups of G rows, N % G == 0) or group_ids ((N,)
    int32/int64 tensor, numpy array, or sequence of hashable ids such as verl's uid strings; any
    ids in any order, ragged sizes). scale: "none" (R - mean_g, HARMO), "group"
    ((R - mean_g) / (std_g + eps), GRPO), "batch" (group mean, whole-batch std). NaN rewards are
    excluded from the statistics and get 0; all-equal groups get exactly 0. The result is detached.
    """
    _checks.check_tensor(OP, "rewards", rewards, ndim=1, dtypes=_checks.FLOAT_DTYPES)
    group_ids = _groups.as_group_ids(OP, group_ids, rewards.device)
    device = _validate(rewards, group_size, group_ids, scale, eps)
    backend = _dispatch.resolve_backend(backend, device, OP)
    return _group_advantages_op(rewards.detach(), group_size, group_ids, scale, float(eps), bool(unbiased), backend)
