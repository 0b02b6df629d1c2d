"""Triton kernels of grpo_loss, mirroring csrc/grpo_loss/grpo_loss_math.h: one program per row
makes the row's partial sums (harmo_fast/ops/_grpo_layout.py RowSlot) and writes the
per-token gradient coefficient (before the row's aggregation weight); a second kernel scales the
coefficients by grad_output * alpha_b in place."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from harmo_fast.ops._grpo_layout import ROW_SLOTS as _ROW_SLOTS
from harmo_fast.ops._grpo_layout import RowSlot
from harmo_fast.ops.token_kl import KL_ESTIMATOR_NAMES
from harmo_fast.triton_kernels.token_kl import kl_value_grad, split_estimator

BLOCK = 256
# The row partials' layout (harmo_fast/ops/_grpo_layout.py), as constants the kernels can read.
ROW_SLOTS = tl.constexpr(_ROW_SLOTS)
SLOT_LOSS = tl.constexpr(int(RowSlot.LOSS))
SLOT_COUNT = tl.constexpr(int(RowSlot.COUNT))
SLOT_KL = tl.constexpr(int(RowSlot.KL))
SLOT_CLIP_LOW = tl.constexpr(int(RowSlot.CLIP_LOW))
SLOT_CLIP_HIGH = tl.constexpr(int(RowSlot.CLIP_HIGH))
SLOT_RATIO = tl.constexpr(int(RowSlot.RATIO))


@triton.jit
def _grpo_token(
    r,
    adv,
    w,
    d,
    clip_lo,
    clip_hi,
    delta,
    beta,
    kl_clamp_d,
    kl_clamp_v,
    HAS_REF: tl.constexpr,
    BIAS: tl.constexpr,
    EST: tl.constexpr,
    ST: tl.constexpr,
):
    """(loss, dL/dr, dL/dlogp at fixed r, kl term, clip_low, clip_high) of each token."""
    r1 = tl.where(r > delta, delta, r)
    r2 = tl.where(r < clip_lo, clip_lo, tl.where(r > clip_hi, clip_hi, r))
    a = tl.where(adv == 0.0, 0.0, r1 * adv)  # a zero advantage: 0, even when r overflowed
    b = r2 * adv
    lo = tl.where((a != a) | (a <= b), a, b)
    slope_a = r <= delta
    slope_b = (r >= clip_lo) & (r <= clip_hi)
    passes = tl.where(a <= b, slope_a, slope_b)
    loss = -lo * w
    dl_dr = tl.where(passes, -adv * w, 0.0)
    dl_dlogp = tl.zeros_like(r)
    kl = tl.zeros_like(r)
    clip_low = ((r < clip_lo) & (adv < 0.0)).to(tl.float32)
    clip_high = ((r > clip_hi) & (adv > 0.0)).to(tl.float32)
    if HAS_REF:
        v, g = kl_value_grad(d, EST, ST, kl_clamp_d, kl_clamp_v)
        if BIAS:
            kl = v * r
        else:
            kl = v
        if beta > 0.0:
            loss += beta * kl
            if BIAS:
                dl_dr += beta * v
                dl_dlogp = beta * tl.where(g == 0.0, 0.0, g * r)
            else:
                dl_dlogp = beta * g
    return loss, dl_dr, dl_dlogp, kl, clip_low, clip_high


@triton.jit
def _seq_ratio(lp_ptr, old_ptr, mask_ptr, base, T, BLOCK: tl.constexpr):
    """GSPO: the row's shared ratio exp(masked mean log-ratio)."""
    cols = tl.arange(0, BLOCK)
    lsum = tl.zeros([BLOCK], tl.float32)
    csum = tl.zeros([BLOCK], tl.float32)
    for start in range(0, T, BLOCK):
        offs = start + cols
        ok = offs < T
        m = tl.load(mask_ptr + base + offs, mask=ok, other=0).to(tl.float32)
        x = tl.load(lp_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
        o = tl.load(old_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
        lsum += tl.where(m != 0.0, m * (x - o), 0.0)
        csum += m
    return tl.exp(tl.sum(lsum, 0) / tl.maximum(tl.sum(csum, 0), 1.0))


@triton.jit
def _per_row_or_token(ptr, b, base, offs, ok, PER_TOKEN: tl.constexpr, BLOCK: tl.constexpr):
    """A (N,) or (N,T) fp32 input as a block of per-token values."""
    if PER_TOKEN:
        v = tl.load(ptr + base + offs, mask=ok, other=0.0)
    else:
        v = tl.zeros([BLOCK], tl.float32) + tl.load(ptr + b)
    return v


@triton.jit
def _ratio_and_kl_arg(
    lp_ptr,
    old_ptr,
    ref_ptr,
    base,
    offs,
    ok,
    x,
    on,
    seq_r,
    HAS_REF: tl.constexpr,
    SEQ: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Each token's ratio r (its own, or the row's at sequence level) and KL argument d = ref - logp
    (0 at masked tokens, so every value there stays finite)."""
    if SEQ:
        r = tl.zeros([BLOCK], tl.float32) + seq_r
    else:
        o = tl.load(old_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
        r = tl.exp(tl.where(on, x - o, 0.0))
    if HAS_REF:
        rf = tl.load(ref_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
        d = tl.where(on, rf - x, 0.0)
    else:
        d = tl.zeros([BLOCK], tl.float32)
    return r, d


@triton.jit
def _add_shared_ratio_grad(coef_ptr, mask_ptr, base, T, c, BLOCK: tl.constexpr):
    """Sequence level: every masked token moves the shared ratio, so each gets m * c more."""
    cols = tl.arange(0, BLOCK)
    for start in range(0, T, BLOCK):
        offs = start + cols
        ok = offs < T
        m = tl.load(mask_ptr + base + offs, mask=ok, other=0).to(tl.float32)
        cf = tl.load(coef_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
        tl.store(coef_ptr + base + offs, tl.where(m != 0.0, cf + m * c, 0.0).to(coef_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _rows_kernel(
    lp_ptr,
    old_ptr,
    ref_ptr,
    mask_ptr,
    adv_ptr,
    w_ptr,
    coef_ptr,
    part_ptr,
    T,
    clip_lo,
    clip_hi,
    delta,
    beta,
    kl_clamp_d,
    kl_clamp_v,
    HAS_REF: tl.constexpr,
    BIAS: tl.constexpr,
    EST: tl.constexpr,
    ST: tl.constexpr,
    SEQ: tl.constexpr,
    ADV_TOK: tl.constexpr,
    W_MODE: tl.constexpr,
    NEED_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One program per row: the row's partial sums (RowSlot order) and, with NEED_GRAD, its
    per-token gradient coefficients."""
    b = tl.program_id(0).to(tl.int64)
    base = b * T
    cols = tl.arange(0, BLOCK)
    seq_r = 1.0
    if SEQ:
        seq_r = _seq_ratio(lp_ptr, old_ptr, mask_ptr, base, T, BLOCK)
    acc_loss = tl.zeros([BLOCK], tl.float32)
    acc_cnt = tl.zeros([BLOCK], tl.float32)
    acc_kl = tl.zeros([BLOCK], tl.float32)
    acc_lo = tl.zeros([BLOCK], tl.float32)
    acc_hi = tl.zeros([BLOCK], tl.float32)
    acc_r = tl.zeros([BLOCK], tl.float32)
    acc_g = tl.zeros([BLOCK], tl.float32)
    for start in range(0, T, BLOCK):
        offs = start + cols
        ok = offs < T
        m = tl.load(mask_ptr + base + offs, mask=ok, other=0).to(tl.float32)
        on = m != 0.0
        x = tl.load(lp_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
        adv = _per_row_or_token(adv_ptr, b, base, offs, ok, ADV_TOK, BLOCK)
        if W_MODE == 0:
            w = tl.full([BLOCK], 1.0, tl.float32)
        else:
            w = _per_row_or_token(w_ptr, b, base, offs, ok, W_MODE == 2, BLOCK)
        r, d = _ratio_and_kl_arg(lp_ptr, old_ptr, ref_ptr, base, offs, ok, x, on, seq_r, HAS_REF, SEQ, BLOCK)
        loss, dl_dr, dl_dlogp, kl, clo, chi = _grpo_token(
            r, adv, w, d, clip_lo, clip_hi, delta, beta, kl_clamp_d, kl_clamp_v, HAS_REF, BIAS, EST, ST
        )
        acc_loss += tl.where(on, m * loss, 0.0)
        acc_kl += tl.where(on, m * kl, 0.0)
        acc_lo += tl.where(on, m * clo, 0.0)
        acc_hi += tl.where(on, m * chi, 0.0)
        acc_r += tl.where(on, m * r, 0.0)
        acc_cnt += m
        acc_g += tl.where(on, m * dl_dr, 0.0)
        if NEED_GRAD:
            if SEQ:
                g = dl_dlogp
            else:
                g = tl.where(dl_dr == 0.0, 0.0, dl_dr * r) + dl_dlogp
            tl.store(coef_ptr + base + offs, tl.where(on, m * g, 0.0).to(coef_ptr.dtype.element_ty), mask=ok)
    cnt = tl.sum(acc_cnt, 0)
    if SEQ and NEED_GRAD:
        gs = tl.sum(acc_g, 0)
        _add_shared_ratio_grad(
            coef_ptr, mask_ptr, base, T, tl.where(gs == 0.0, 0.0, gs * seq_r) / tl.maximum(cnt, 1.0), BLOCK
        )
    out = part_ptr + b * ROW_SLOTS
    tl.store(out + SLOT_LOSS, tl.sum(acc_loss, 0))
    tl.store(out + SLOT_COUNT, cnt)
    tl.store(out + SLOT_KL, tl.sum(acc_kl, 0))
    tl.store(out + SLOT_CLIP_LOW, tl.sum(acc_lo, 0))
    tl.store(out + SLOT_CLIP_HIGH, tl.sum(acc_hi, 0))
    tl.store(out + SLOT_RATIO, tl.sum(acc_r, 0))


@triton.jit
def _scale_kernel(coef_ptr, scale_ptr, grad_ptr, T, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    s = tl.load(scale_ptr + b) * tl.load(grad_ptr)
    cols = tl.arange(0, BLOCK)
    for start in range(0, T, BLOCK):
        offs = start + cols
        ok = offs < T
        c = tl.load(coef_ptr + b * T + offs, mask=ok, other=0.0).to(tl.float32)
        tl.store(coef_ptr + b * T + offs, (c * s).to(coef_ptr.dtype.element_ty), mask=ok)


def forward(logp, old, adv, mask, ref, w, settings, need_grad):
    """Row partials (N, ROW_SLOTS) fp32 and the coefficient tensor (or None); inputs as the launchers
    get them, settings a harmo_fast.ops.grpo_loss.GrpoSettings."""
    n, t = logp.shape
    partials = torch.zeros((n, _ROW_SLOTS), dtype=torch.float32, device=logp.device)
    coef = torch.empty((n, t), dtype=logp.dtype, device=logp.device) if need_grad else None
    if n and t:
        w_mode = 0 if w is None else (2 if w.dim() == 2 else 1)
        est, st = split_estimator(KL_ESTIMATOR_NAMES[settings.kl_estimator])
        _rows_kernel[(n,)](
            logp,
            old,
            logp if ref is None else ref,
            mask,
            adv,
            adv if w is None else w,
            logp if coef is None else coef,
            partials,
            t,
            settings.clip_lo,
            settings.clip_hi,
            settings.delta,
            settings.beta,
            settings.kl_clamp_d,
            settings.kl_clamp_v,
            HAS_REF=ref is not None,
            BIAS=settings.bias_corrected,
            EST=est,
            ST=st,
            SEQ=settings.sequence,
            ADV_TOK=adv.dim() == 2,
            W_MODE=w_mode,
            NEED_GRAD=need_grad,
            BLOCK=BLOCK,
        )
    elif need_grad:
        coef.zero_()
    return partials, coef


def scale_rows_(coef: torch.Tensor, row_scale: torch.Tensor, grad: torch.Tensor) -> None:
    """coef (N,T) *= grad * row_scale[:, None], in place."""
    n, t = coef.shape
    if n and t:
        _scale_kernel[(n,)](coef, row_scale, grad, t, BLOCK=BLOCK)
