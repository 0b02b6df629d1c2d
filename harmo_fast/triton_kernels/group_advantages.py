"""Triton kernels of group_advantages, one program per group, mirroring
csrc/group_advantages/group_advantages_math.h: statistics in float64 over the group's non-NaN
rewards, deviations from a pivot (the first non-NaN reward) so that all-equal groups give exactly 0.
Batch scale adds a one-program combination of the group summaries and an elementwise rescale."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from harmo_fast.ops._groups import GroupLayout
from harmo_fast.triton_kernels._groups import group_rows

MAX_BLOCK = 1024  # lanes per program; longer groups loop over chunks
SCALE_BLOCK = 1024
# float64 slots of a group's summary in batch scale: count, mean, M2 (the batch's inverse std follows
# the num_groups summaries).
SUMMARY = tl.constexpr(3)


@triton.jit
def _group_kernel(
    r_ptr,
    out_ptr,
    order_ptr,
    offsets_ptr,
    summary_ptr,
    group_size,
    eps,
    SCALED: tl.constexpr,
    BATCH: tl.constexpr,
    UNBIASED: tl.constexpr,
    CONTIGUOUS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    g = tl.program_id(0).to(tl.int64)
    if CONTIGUOUS:
        begin = g * group_size
        end = begin + group_size
    else:
        begin = tl.load(offsets_ptr + g)
        end = tl.load(offsets_ptr + g + 1)
    lanes = tl.arange(0, BLOCK)

    first = end
    for start in range(begin, end, BLOCK):
        k = start + lanes
        inb = k < end
        x = tl.load(r_ptr + group_rows(order_ptr, k, inb, CONTIGUOUS), mask=inb, other=float("nan")).to(tl.float64)
        first = tl.minimum(first, tl.min(tl.where(x == x, k, end), axis=0))
    has = first < end
    pivot = tl.load(r_ptr + group_rows(order_ptr, first, has, CONTIGUOUS), mask=has, other=0.0).to(tl.float64)

    cnt = tl.zeros([BLOCK], dtype=tl.float64)
    acc = tl.zeros([BLOCK], dtype=tl.float64)
    for start in range(begin, end, BLOCK):
        k = start + lanes
        inb = k < end
        x = tl.load(r_ptr + group_rows(order_ptr, k, inb, CONTIGUOUS), mask=inb, other=float("nan")).to(tl.float64)
        present = x == x
        cnt += tl.where(present, 1.0, 0.0)
        acc += tl.where(present, x - pivot, 0.0)
    count = tl.sum(cnt, axis=0)
    shift_mean = tl.sum(acc, axis=0) / tl.maximum(count, 1.0)

    inv = tl.full([], 1.0, tl.float64)
    if SCALED:
        sq = tl.zeros([BLOCK], dtype=tl.float64)
        for start in range(begin, end, BLOCK):
            k = start + lanes
            inb = k < end
            x = tl.load(r_ptr + group_rows(order_ptr, k, inb, CONTIGUOUS), mask=inb, other=float("nan")).to(tl.float64)
            d = x - pivot - shift_mean
            sq += tl.where(x == x, d * d, 0.0)
        m2 = tl.sum(sq, axis=0)
        if not BATCH:
            dof = count - 1.0 if UNBIASED else count
            std = tl.where(dof > 0, tl.sqrt(m2 / tl.maximum(dof, 1.0)), 0.0)
            denom = std + eps
            inv = tl.where(denom > 0, 1.0 / tl.where(denom > 0, denom, 1.0), 0.0)
        else:
            tl.store(summary_ptr + SUMMARY * g, count)
            tl.store(summary_ptr + SUMMARY * g + 1, pivot + shift_mean)
            tl.store(summary_ptr + SUMMARY * g + 2, m2)

    for start in range(begin, end, BLOCK):
        k = start + lanes
        inb = k < end
        rows = group_rows(order_ptr, k, inb, CONTIGUOUS)
        x = tl.load(r_ptr + rows, mask=inb, other=float("nan")).to(tl.float64)
        a = tl.where(x == x, (x - pivot - shift_mean) * inv, 0.0)
        tl.store(out_ptr + rows, a.to(tl.float32), mask=inb)


@triton.jit
def _batch_inverse_std_kernel(summary_ptr, num_groups, eps, UNBIASED: tl.constexpr, BLOCK: tl.constexpr):
    """1 / (batch std + eps) from per-group (count, mean, M2), stored after the summaries.

    M2_batch = sum_g M2_g + sum_g n_g (mean_g - mean)^2, exactly."""
    lanes = tl.arange(0, BLOCK)
    acc_n = tl.zeros([BLOCK], dtype=tl.float64)
    acc_s = tl.zeros([BLOCK], dtype=tl.float64)
    for start in range(0, num_groups, BLOCK):
        j = (start + lanes).to(tl.int64)
        m = j < num_groups
        c = tl.load(summary_ptr + SUMMARY * j, mask=m, other=0.0)
        mu = tl.load(summary_ptr + SUMMARY * j + 1, mask=m, other=0.0)
        acc_n += c
        acc_s += c * mu
    n = tl.sum(acc_n, axis=0)
    mean = tl.sum(acc_s, axis=0) / tl.maximum(n, 1.0)
    acc = tl.zeros([BLOCK], dtype=tl.float64)
    for start in range(0, num_groups, BLOCK):
        j = (start + lanes).to(tl.int64)
        m = j < num_groups
        c = tl.load(summary_ptr + SUMMARY * j, mask=m, other=0.0)
        mu = tl.load(summary_ptr + SUMMARY * j + 1, mask=m, other=0.0)
        m2 = tl.load(summary_ptr + SUMMARY * j + 2, mask=m, other=0.0)
        acc += m2 + c * (mu - mean) * (mu - mean)
    dof = n - 1.0 if UNBIASED else n
    std = tl.where(dof > 0, tl.sqrt(tl.sum(acc, axis=0) / tl.maximum(dof, 1.0)), 0.0)
    denom = std + eps
    tl.store(summary_ptr + SUMMARY * num_groups, tl.where(denom > 0, 1.0 / tl.where(denom > 0, denom, 1.0), 0.0))


@triton.jit
def _rescale_kernel(out_ptr, inv_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    inv = tl.load(inv_ptr)
    a = tl.load(out_ptr + offs, mask=m, other=0.0).to(tl.float64)
    tl.store(out_ptr + offs, (a * inv).to(tl.float32), mask=m)


def group_advantages(
    rewards: torch.Tensor, groups: GroupLayout, scale: str, eps: float, unbiased: bool
) -> torch.Tensor:
    """fp32 advantages of contiguous rewards (N,) over `groups` (N > 0); scale "none", "group" or "batch"."""
    batch = scale == "batch"
    n = rewards.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=rewards.device)
    contiguous = groups.size > 0
    longest = groups.size if contiguous else int((groups.offsets[1:] - groups.offsets[:-1]).max())
    block = min(MAX_BLOCK, triton.next_power_of_2(max(longest, 1)))
    summary = torch.empty(SUMMARY * groups.num_groups + 1 if batch else 1, dtype=torch.float64, device=rewards.device)
    order = groups.order if not contiguous else out
    offsets = groups.offsets if not contiguous else out
    _group_kernel[(groups.num_groups,)](
        rewards,
        out,
        order,
        offsets,
        summary,
        max(groups.size, 1),
        eps,
        SCALED=scale != "none",
        BATCH=batch,
        UNBIASED=unbiased,
        CONTIGUOUS=contiguous,
        BLOCK=block,
    )
    if batch:
        _batch_inverse_std_kernel[(1,)](summary, groups.num_groups, eps, UNBIASED=unbiased, BLOCK=MAX_BLOCK)
        _rescale_kernel[(triton.cdiv(n, SCALE_BLOCK),)](
            out, summary[SUMMARY * groups.num_groups :], n, BLOCK=SCALE_BLOCK
        )
    return out
