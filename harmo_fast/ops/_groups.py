"""Group handling shared by the per-group ops (group_advantages, length_penalty).

A batch of N rows is split into groups either by `group_size` (contiguous blocks of G rows,
N % G == 0) or by `group_ids` (N integer ids, any values, any order, ragged sizes). Validation
here is static (shapes, dtypes, devices: traceable by torch.compile); `layout` does the
data-dependent part and hands the kernels one form: contiguous blocks, or CSR lists (a stable
order of the rows sorted by group, and the offsets where each group starts in it).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from harmo_fast import _checks, _native


class GroupLayout(NamedTuple):
    """The groups of a batch as the kernels take them.

    size > 0: group g is rows [g*size, (g+1)*size), order/offsets are None.
    size == 0: group g is rows order[offsets[g]:offsets[g+1]] (order int64 (N,), offsets int64
    (num_groups+1,)), rows of a group in their original order.
    """

    num_groups: int
    size: int
    order: torch.Tensor | None
    offsets: torch.Tensor | None


def check_grouping(op: str, n: int, device: torch.device, group_size: object, group_ids: object) -> None:
    """Exactly one of group_size (a positive int dividing n) / group_ids ((n,) int32/int64 on device)."""
    if (group_size is None) == (group_ids is None):
        raise ValueError(f"{op}: give exactly one of group_size (contiguous groups) or group_ids (any grouping)")
    if group_ids is None:
        if isinstance(group_size, bool) or not isinstance(group_size, int):
            raise TypeError(f"{op}: group_size must be an int, got {type(group_size).__name__}")
        if group_size <= 0:
            raise ValueError(f"{op}: group_size must be positive, got {group_size}")
        if n % group_size != 0:
            raise ValueError(f"{op}: group_size={group_size} does not divide the batch size {n}")
        return
    _checks.check_tensor(op, "group_ids", group_ids, ndim=1, dtypes=_checks.INDEX_DTYPES)
    _checks.check_shape(op, "group_ids", group_ids, (n,))
    if group_ids.device != device:
        raise ValueError(f"{op}: group_ids must be on {device} like the other inputs, got {group_ids.device}")


def layout(n: int, group_size: int | None, group_ids: torch.Tensor | None) -> GroupLayout:
    """The kernels' form of a validated grouping: rows stably sorted by group id (the compiled core's
    counting sort for CPU ids, torch.sort elsewhere) and each group's start."""
    if group_ids is None:
        return GroupLayout(n // group_size if n else 0, group_size, None, None)
    if group_ids.device.type == "cpu" and _native.module_status("_C") == "available":
        ids = group_ids.contiguous()
        order = torch.empty(n, dtype=torch.int64)
        offsets = torch.empty(n + 1, dtype=torch.int64)
        num_groups = _native.cpu_module().group_layout(
            ids=ids.data_ptr(), dtype=_native.dtype_code(ids), n=n, order=order.data_ptr(), offsets=offsets.data_ptr()
        )
        return GroupLayout(num_groups, 0, order, offsets[: num_groups + 1])
    sorted_ids, order = torch.sort(group_ids, stable=True)
    counts = torch.unique_consecutive(sorted_ids, return_counts=True)[1]
    offsets = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=group_ids.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    return GroupLayout(counts.numel(), 0, order, offsets)


def kernel_arguments(groups: GroupLayout) -> dict[str, int]:
    """A layout as the compiled kernels' keyword arguments (num_groups, group_size, order, offsets)."""
    return dict(
        num_groups=groups.num_groups,
        group_size=groups.size,
        order=_native.address(groups.order),
        offsets=_native.address(groups.offsets),
    )


class Segments:
    """Per-group sums and broadcasts for the readable torch references: a view for contiguous
    groups, index_add / gather over a dense group index (torch.unique) for group ids."""

    def __init__(self, n: int, group_size: int | None, group_ids: torch.Tensor | None, device: torch.device) -> None:
        self.size = group_size
        if group_ids is None:
            self.index = None
            self.num_groups = n // group_size if n else 0
        else:
            uniq, self.index = torch.unique(group_ids, return_inverse=True)
            self.num_groups = uniq.numel()
        self.device = device

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """(N,) -> (num_groups,) sum of each group's values."""
        if self.index is None:
            return values.view(-1, self.size).sum(1)
        return torch.zeros(self.num_groups, dtype=values.dtype, device=self.device).index_add(0, self.index, values)

    def amin(self, values: torch.Tensor, empty: int) -> torch.Tensor:
        """(N,) -> (num_groups,) minimum of each group's values (`empty` where a group has none)."""
        if self.index is None:
            return values.view(-1, self.size).amin(1) if values.numel() else values.new_full((0,), empty)
        init = torch.full((self.num_groups,), empty, dtype=values.dtype, device=self.device)
        return init.scatter_reduce(0, self.index, values, reduce="amin")

    def expand(self, per_group: torch.Tensor) -> torch.Tensor:
        """(num_groups,) -> (N,): each row gets its group's value."""
        if self.index is None:
            return per_group.repeat_interleave(self.size)
        return per_group[self.index]
