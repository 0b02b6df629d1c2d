"""Triton kernels of selective log-softmax: one program per row on a 1-D grid, 64-bit row offsets,
an online max / sum-exp over the vocabulary in BLOCK-wide slices (the same math as
csrc/selective_log_softmax/selective_log_softmax_math.h)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_MAX_BLOCK = 4096


@triton.jit
def _forward_kernel(
    logits_ptr,
    index_ptr,
    logp_ptr,
    lse_ptr,
    entropy_ptr,
    vocab,
    inner,
    stride_outer,
    stride_inner,
    inv_tau,
    HAS_ENTROPY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + (row // inner) * stride_outer + (row % inner) * stride_inner
    neg_inf = float("-inf")
    m = tl.zeros((), tl.float32) + neg_inf  # running max
    s = tl.zeros((), tl.float32)  # sum exp(x - m)
    t = tl.zeros((), tl.float32)  # sum exp(x - m) (x - m), for the entropy
    for start in range(0, vocab, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(base + offs, mask=offs < vocab, other=neg_inf).to(tl.float32) * inv_tau
        m_new = tl.maximum(m, tl.max(x, 0))
        seen = s > 0  # some finite value seen so far, so m is finite
        d_old = tl.where(seen, m - m_new, 0.0)
        k = tl.where(seen, tl.exp(d_old), 0.0)
        d = tl.where(x != neg_inf, x - m_new, neg_inf)  # all -inf so far: m_new is -inf too
        e = tl.exp(d)
        s_old = s
        s = s * k + tl.sum(e, 0)
        if HAS_ENTROPY:
            t = (t + d_old * s_old) * k + tl.sum(e * tl.where(e > 0, d, 0.0), 0)  # no 0 * -inf
        m = m_new
    y = tl.load(index_ptr + row)
    lse = m + tl.log(s)
    ok = (y >= 0) & (y < vocab)
    x_y = tl.load(base + tl.where(ok, y, 0)).to(tl.float32) * inv_tau
    tl.store(lse_ptr + row, lse)
    tl.store(logp_ptr + row, tl.where(ok, x_y - lse, float("nan")))
    if HAS_ENTROPY:
        tl.store(entropy_ptr + row, tl.log(s) - t / s)


@triton.jit
def _backward_kernel(
    logits_ptr,
    index_ptr,
    grad_logp_ptr,
    grad_entropy_ptr,
    lse_ptr,
    entropy_ptr,
    grad_ptr,
    vocab,
    inner,
    stride_outer,
    stride_inner,
    grad_inner,
    grad_stride_outer,
    grad_stride_inner,
    inv_tau,
    HAS_GRAD_LOGP: tl.constexpr,
    HAS_GRAD_ENTROPY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    src = logits_ptr + (row // inner) * stride_outer + (row % inner) * stride_inner
    dst = grad_ptr + (row // grad_inner) * grad_stride_outer + (row % grad_inner) * grad_stride_inner
    y = tl.load(index_ptr + row)
    lse = tl.load(lse_ptr + row)
    a = tl.zeros((), tl.float32)
    b = tl.zeros((), tl.float32)
    if HAS_GRAD_LOGP:
        a = tl.load(grad_logp_ptr + row) * inv_tau
    k0 = a
    if HAS_GRAD_ENTROPY:
        b = tl.load(grad_entropy_ptr + row) * inv_tau
        k0 = a - b * (lse - tl.load(entropy_ptr + row))
    for start in range(0, vocab, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < vocab
        x = tl.load(src + offs, mask=mask, other=0.0).to(tl.float32) * inv_tau
        p = tl.exp(x - lse)
        g = -p * (k0 + b * tl.where(p > 0, x, 0.0)) + tl.where(offs == y, a, 0.0)  # -inf logit: 0, not NaN
        tl.store(dst + offs, g.to(grad_ptr.dtype.element_ty), mask=mask)


def _block(vocab: int) -> int:
    return triton.next_power_of_2(min(vocab, _MAX_BLOCK))


def forward(
    logits: torch.Tensor,
    layout: tuple[int, int, int, int, int],
    index: torch.Tensor,
    inv_tau: float,
    logp: torch.Tensor,
    lse: torch.Tensor,
    entropy: torch.Tensor | None,
) -> None:
    """Fill logp, lse (and entropy) per row; layout = (rows, vocab, inner, stride_outer, stride_inner)."""
    rows, vocab, inner, so, si = layout
    _forward_kernel[(rows,)](
        logits,
        index,
        logp,
        lse,
        entropy if entropy is not None else lse,
        vocab,
        inner,
        so,
        si,
        inv_tau,
        HAS_ENTROPY=entropy is not None,
        BLOCK=_block(vocab),
    )


def backward(
    logits: torch.Tensor,
    layout: tuple[int, int, int, int, int],
    index: torch.Tensor,
    inv_tau: float,
    grad_logp: torch.Tensor | None,
    grad_entropy: torch.Tensor | None,
    lse: torch.Tensor,
    entropy: torch.Tensor | None,
    grad: torch.Tensor,
    grad_layout: tuple[int, int, int, int, int],
) -> None:
    """Write d loss / d logits into grad (which may be logits itself)."""
    rows, vocab, inner, so, si = layout
    _, _, g_inner, g_so, g_si = grad_layout
    _backward_kernel[(rows,)](
        logits,
        index,
        grad_logp if grad_logp is not None else lse,
        grad_entropy if grad_entropy is not None else lse,
        lse,
        entropy if entropy is not None else lse,
        grad,
        vocab,
        inner,
        so,
        si,
        g_inner,
        g_so,
        g_si,
        inv_tau,
        HAS_GRAD_LOGP=grad_logp is not None,
        HAS_GRAD_ENTROPY=grad_entropy is not None,
        BLOCK=_block(vocab),
    )
