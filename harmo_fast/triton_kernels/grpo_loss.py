"""Triton kernels of grpo_loss, mirroring csrc/grpo_loss/grpo_loss_math.h: one program per row
makes the row's partial sums [loss, count, kl, clip_low, clip_high, ratio] and writes the
per-token gradient coefficient (before the row's aggregation weight); a second kernel scales the
coefficients by grad_output * alpha_b in place."""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from harmo_fast.triton_kernels.token_kl import kl_value_grad

BLOCK = 256
PARTIALS = 8


@triton.jit
def _grpo_token(
    r, adv, w, d, clip_lo, clip_hi, delta, beta, no_clamp, HAS_REF: tl.constexpr, BIAS: tl.constexpr, EST: tl.constexpr
):
    """(loss, dL/dr, dL/dlogp at fixed r, kl term, clip_low, clip_high) of each token."""
    r1 = tl.where(r > delta, delta, r)
    r2 = tl.where(r < clip_lo, clip_lo, tl.where(r > clip_hi, clip_hi, r))
    a = r1 * adv
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
        v, g = kl_value_grad(d, EST, no_clamp, no_clamp)
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
    no_clamp,
    HAS_REF: tl.constexpr,
    BIAS: tl.constexpr,
    EST: tl.constexpr,
    SEQ: tl.constexpr,
    ADV_TOK: tl.constexpr,
    W_MODE: tl.constexpr,
    NEED_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    base = b * T
    cols = tl.arange(0, BLOCK)
    seq_r = 1.0
    if SEQ:  # GSPO: the row's masked mean log-ratio first
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
        cnt0 = tl.sum(csum, 0)
        seq_r = tl.exp(tl.sum(lsum, 0) / tl.maximum(cnt0, 1.0))
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
        if ADV_TOK:
            adv = tl.load(adv_ptr + base + offs, mask=ok, other=0.0)
        else:
            adv = tl.zeros([BLOCK], tl.float32) + tl.load(adv_ptr + b)
        if W_MODE == 2:
            w = tl.load(w_ptr + base + offs, mask=ok, other=0.0)
        elif W_MODE == 1:
            w = tl.zeros([BLOCK], tl.float32) + tl.load(w_ptr + b)
        else:
            w = tl.full([BLOCK], 1.0, tl.float32)
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
        loss, dl_dr, dl_dlogp, kl, clo, chi = _grpo_token(
            r, adv, w, d, clip_lo, clip_hi, delta, beta, no_clamp, HAS_REF, BIAS, EST
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
    if SEQ:
        if NEED_GRAD:  # every masked token moves the shared ratio
            gs = tl.sum(acc_g, 0)
            c = tl.where(gs == 0.0, 0.0, gs * seq_r) / tl.maximum(cnt, 1.0)
            for start in range(0, T, BLOCK):
                offs = start + cols
                ok = offs < T
                m = tl.load(mask_ptr + base + offs, mask=ok, other=0).to(tl.float32)
                cf = tl.load(coef_ptr + base + offs, mask=ok, other=0.0).to(tl.float32)
                tl.store(
                    coef_ptr + base + offs, tl.where(m != 0.0, cf + m * c, 0.0).to(coef_ptr.dtype.element_ty), mask=ok
                )
    out = part_ptr + b * 8
    tl.store(out + 0, tl.sum(acc_loss, 0))
    tl.store(out + 1, cnt)
    tl.store(out + 2, tl.sum(acc_kl, 0))
    tl.store(out + 3, tl.sum(acc_lo, 0))
    tl.store(out + 4, tl.sum(acc_hi, 0))
    tl.store(out + 5, tl.sum(acc_r, 0))


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


def forward(logp, old, adv, mask, ref, w, cfg, need_grad):
    """Row partials (N, 8) fp32 and the coefficient tensor (or None); inputs as the launchers get them."""
    clip_lo, clip_hi, delta, beta, kl_code, bias, seq = cfg[:7]
    n, t = logp.shape
    partials = torch.zeros((n, PARTIALS), dtype=torch.float32, device=logp.device)
    coef = torch.empty((n, t), dtype=logp.dtype, device=logp.device) if need_grad else None
    if n and t:
        w_mode = 0 if w is None else (2 if w.dim() == 2 else 1)
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
            clip_lo,
            clip_hi,
            delta,
            beta,
            math.inf,
            HAS_REF=ref is not None,
            BIAS=bool(bias),
            EST=kl_code,
            SEQ=bool(seq),
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
