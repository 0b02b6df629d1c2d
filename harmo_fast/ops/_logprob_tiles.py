"""Tiles of logits for the log-prob ops: how the selective_log_softmax kernels address a block of
rows, how linear_log_probs cuts its (tokens, vocabulary) logits into tiles that fit a byte budget,
and how a row's vocabulary blocks merge online into one log-softmax."""

from __future__ import annotations

from collections.abc import Iterator

import torch

# (rows, vocab, inner, stride_outer, stride_inner): the kernels' view of a (..., V) tensor, with
# the leading dimensions collapsed to at most two strided ones (see RowLayout in the _math.h).
Layout = tuple[int, int, int, int, int]

# Budget for one tile of logits in the parameters' dtype.
CHUNK_BYTES = 16 << 20
# Tokens per tile when chunk_size is not given: in linear_log_probs' backward each vocabulary
# block's weight gradient is one matmul over this many tokens.
TILE_ROWS = 4096


# --------------------------------------------------------------------------------------------
# The kernels' view of a block of rows
# --------------------------------------------------------------------------------------------
def row_layout(t: torch.Tensor) -> Layout | None:
    """The kernels' (rows, vocab, inner, stride_outer, stride_inner) view of t, or None when the
    last dimension is strided or the leading dimensions do not collapse to two strided ones."""
    vocab = t.shape[-1]
    if vocab > 1 and t.stride(-1) != 1:
        return None
    rows = t.numel() // vocab if vocab else 0
    dims: list[tuple[int, int]] = []
    for size, stride in zip(t.shape[:-1], t.stride()[:-1]):
        if size == 1:
            continue
        if dims and dims[-1][1] == stride * size:
            dims[-1] = (dims[-1][0] * size, stride)
        else:
            dims.append((size, stride))
    if not dims:
        return (rows, vocab, 1, 0, 0)
    if len(dims) == 1:
        return (rows, vocab, 1, dims[0][1], 0)
    if len(dims) == 2:
        return (rows, vocab, dims[1][0], dims[0][1], dims[1][1])
    return None


def kernel_input(logits: torch.Tensor) -> tuple[torch.Tensor, Layout]:
    """logits as the kernels can read it: as is when its layout allows, else a contiguous copy."""
    layout = row_layout(logits)
    if layout is None:
        logits = logits.contiguous()
        layout = row_layout(logits)
        assert layout is not None
    return logits, layout


def gradient_like(logits: torch.Tensor) -> torch.Tensor:
    """An uninitialised d(logits) the kernels can write: logits' own layout when they can address
    it, else contiguous. Shape-only, so the ops' fake implementations use it too."""
    if row_layout(logits) is None:
        return torch.empty_like(logits, memory_format=torch.contiguous_format)
    return torch.empty_like(logits)


# --------------------------------------------------------------------------------------------
# Tiles of (tokens, vocabulary) logits
# --------------------------------------------------------------------------------------------
def tile_shape(n: int, vocab: int, element_size: int, tile_rows: int) -> tuple[int, int]:
    """(token rows, vocabulary columns) of one tile of logits: up to tile_rows tokens, and as many
    vocabulary columns as keep the tile within CHUNK_BYTES (at least 1)."""
    rows = max(1, min(n, tile_rows))
    return rows, max(1, min(vocab, CHUNK_BYTES // (element_size * rows)))


def spans(n: int, step: int) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of at most `step` covering [0, n)."""
    for start in range(0, n, step):
        yield start, min(n, start + step)


def rows_of(t: torch.Tensor | None, start: int, end: int) -> torch.Tensor | None:
    """t[start:end], or None for an absent tensor."""
    return None if t is None else t[start:end]


def tile_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """out[:] = h @ weight.T (+ bias), in the parameters' dtype, into a reused buffer."""
    if bias is None:
        return torch.mm(h, weight.t(), out=out)
    return torch.addmm(bias, h, weight.t(), out=out)


# --------------------------------------------------------------------------------------------
# Online merge of a row's vocabulary blocks
# --------------------------------------------------------------------------------------------
class OnlineLogSoftmax:
    """The log-softmax of rows whose vocabulary arrives in blocks, merged as they come: the
    logsumexp by logaddexp, the target's logit from the block that holds it, and the entropy
    through sum_j p_j x_j = sum_b exp(lse_b - lse) (lse_b - entropy_b)."""

    def __init__(self, with_entropy: bool) -> None:
        self.with_entropy = with_entropy
        self.lse: torch.Tensor | None = None
        self.target: torch.Tensor | None = None  # the target's logit / temperature
        self.px: torch.Tensor | None = None  # sum_j p_j x_j so far

    def add(self, logp: torch.Tensor, lse: torch.Tensor, entropy: torch.Tensor | None, inside: torch.Tensor) -> None:
        """Merge one block's per-row (logp, lse, entropy); `inside` marks the rows whose target
        lies in this block (elsewhere its logp is of a stand-in index)."""
        x = logp + lse
        px = lse - entropy if self.with_entropy else None
        if self.lse is None:
            self.lse, self.target, self.px = lse, x, px
            return
        self.target = torch.where(inside, x, self.target)
        new = torch.logaddexp(self.lse, lse)
        if self.with_entropy:  # where(): a block of -inf logits has weight 0, whatever its entropy
            keep, add = torch.exp(self.lse - new), torch.exp(lse - new)
            self.px = torch.where(keep > 0, self.px * keep, 0.0) + torch.where(add > 0, px * add, 0.0)
        self.lse = new

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(logp, lse, entropy or None) of the rows over every block added."""
        entropy = self.lse - self.px if self.with_entropy else None
        return self.target - self.lse, self.lse, entropy
