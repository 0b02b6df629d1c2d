"""Group handling shared by the per-group ops (group_advantages, length_penalty).

A batch of N rows is split into groups either by `group_size` (contiguous blocks of G rows,
N % G == 0) or by `group_ids` (N ids, any values, any order, ragged sizes): an int32/int64
tensor, or, turned into one by `as_group_ids`, a numpy array or a sequence of hashable ids (verl's
numpy array of uid strings, a list of prompt ids). Validation
here is static (shapes, dtypes, devices: traceable by torch.compile); `layout` does the
data-dependent part and hands the kernels one form: contiguous blocks, or CSR lists (a stable
order of the rows sorted by group, and the offsets where each group starts in it).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
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


def _is_nan(x: object) -> bool:
    try:
        return math.isnan(x)
    except TypeError:  # not a number
        return False


def _dense_codes(op: str, ids: Iterable[object]) -> list[int]:
    """Each id's group number, numbered in order of first appearance."""
    codes: dict[Hashable, int] = {}
    out = []
    for i, x in enumerate(ids):
        if _is_nan(x):  # NaN is not equal to itself: it cannot name a group
            raise ValueError(f"{op}: group_ids[{i}] is NaN")
        try:
            out.append(codes.setdefault(x, len(codes)))
        except TypeError:
            raise TypeError(f"{op}: group_ids[{i}] is not hashable ({type(x).__name__})") from None
    return out


def as_group_ids(op: str, group_ids: object, device: torch.device) -> torch.Tensor | None:
    """group_ids as the ops take them: a tensor unchanged; a numpy integer array as an int64
    tensor; any other numpy array or sequence of hashable ids (strings, tuples, ...) as int64
    codes in order of first appearance; on `device`. Strings and bytes alone are refused."""
    if group_ids is None or isinstance(group_ids, torch.Tensor):
        return group_ids
    if isinstance(group_ids, (str, bytes)):
        raise TypeError(f"{op}: group_ids must be a tensor, a numpy array or a sequence of ids, not a string")
    kind = getattr(getattr(group_ids, "dtype", None), "kind", None)  # numpy arrays, without importing numpy
    if kind is not None and getattr(group_ids, "ndim", 1) != 1:
        raise ValueError(f"{op}: group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
    if kind in ("i", "u"):
        return torch.as_tensor(group_ids.astype("int64"), device=device)
    try:
        ids = list(group_ids)
    except TypeError:
        raise TypeError(
            f"{op}: group_ids must be a tensor, a numpy array or a sequence of ids, got {type(group_ids).__name__}"
        ) from None
    return torch.tensor(_dense_codes(op, ids), dtype=torch.int64, device=device)


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
