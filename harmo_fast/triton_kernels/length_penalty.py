"""Triton kernel of length_penalty, one program per group, mirroring
csrc/length_penalty/length_penalty_math.h (the anchor is the group's shortest correct length;
d and g in float64)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from harmo_fast.ops._groups import GroupLayout
from harmo_fast.triton_kernels._groups import group_rows

MAX_BLOCK = 1024
_NO_ANCHOR = 9223372036854775807


@triton.jit
def _length_penalty_kernel(
    len_ptr,
    correct_ptr,
    out_ptr,
    order_ptr,
    offsets_ptr,
    group_size,
    params_ptr,
    no_anchor,
    SHAPE: tl.constexpr,
    CONTIGUOUS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    g = tl.program_id(0).to(tl.int64)
    p_max = tl.load(params_ptr)
    tau = tl.load(params_ptr + 1)
    if CONTIGUOUS:
        begin = g * group_size
        end = begin + group_size
    else:
        begin = tl.load(offsets_ptr + g)
        end = tl.load(offsets_ptr + g + 1)
    lanes = tl.arange(0, BLOCK)

    best = tl.full([BLOCK], no_anchor, tl.int64)
    seen = tl.zeros([BLOCK], dtype=tl.int32)
    for start in range(begin, end, BLOCK):
        k = start + lanes
        inb = k < end
        rows = group_rows(order_ptr, k, inb, CONTIGUOUS)
        length = tl.load(len_ptr + rows, mask=inb, other=0).to(tl.int64)
        ok = tl.load(correct_ptr + rows, mask=inb, other=0) != 0
        best = tl.minimum(best, tl.where(ok, length, no_anchor))
        seen = tl.maximum(seen, ok.to(tl.int32))
    anchor = tl.min(best, axis=0)
    has_anchor = tl.max(seen, axis=0) > 0

    for start in range(begin, end, BLOCK):
        k = start + lanes
        inb = k < end
        rows = group_rows(order_ptr, k, inb, CONTIGUOUS)
        length = tl.load(len_ptr + rows, mask=inb, other=0).to(tl.int64)
        ok = tl.load(correct_ptr + rows, mask=inb, other=0) != 0
        penalised = (ok == 0) & has_anchor & (length < anchor)
        d = (anchor - length).to(tl.float64) / tl.maximum(anchor, 1).to(tl.float64)
        if SHAPE == "linear":
            shape = tl.minimum(d / tau, 1.0)
        elif SHAPE == "exp":
            shape = 1.0 - tl.exp(-d / tau)
        else:
            shape = tl.where(d >= tau, 1.0, 0.0)
        value = tl.where(penalised, 0.0 - p_max * shape, 0.0)
        tl.store(out_ptr + rows, value.to(tl.float32), mask=inb)


def length_penalty(
    lengths: torch.Tensor, correct: torch.Tensor, groups: GroupLayout, p_max: float, tau: float, shape: str
) -> torch.Tensor:
    """fp32 penalties of contiguous lengths/correct (N,) over `groups` (N > 0); shape "linear", "exp" or "step"."""
    n = lengths.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=lengths.device)
    contiguous = groups.size > 0
    longest = groups.size if contiguous else int((groups.offsets[1:] - groups.offsets[:-1]).max())
    block = min(MAX_BLOCK, triton.next_power_of_2(max(longest, 1)))
    order = groups.order if not contiguous else out
    offsets = groups.offsets if not contiguous else out
    # p_max and tau in float64, read from memory: Triton passes Python floats as fp32 scalars, and
    # an fp32 tau (0.1 -> 0.100000001) would decide the step boundary d >= tau unlike the reference.
    params = torch.tensor([p_max, tau], dtype=torch.float64, device=lengths.device)
    _length_penalty_kernel[(groups.num_groups,)](
        lengths,
        correct.view(torch.uint8),
        out,
        order,
        offsets,
        max(groups.size, 1),
        params,
        _NO_ANCHOR,
        SHAPE=shape,
        CONTIGUOUS=contiguous,
        BLOCK=block,
    )
    return out
