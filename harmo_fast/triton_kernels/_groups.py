"""Group addressing shared by the one-program-per-group Triton kernels (group_advantages,
length_penalty): contiguous groups are addressed directly, ragged ones through a row order."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def group_rows(order_ptr, k, mask, CONTIGUOUS: tl.constexpr):
    """Row indices of positions k in the group order (identity for contiguous groups)."""
    if CONTIGUOUS:
        return k
    else:
        return tl.load(order_ptr + k, mask=mask, other=0)
