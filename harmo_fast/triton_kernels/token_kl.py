"""Triton kernels of token_kl: flat elementwise forward (fp32 value) and backward (recomputes the
local derivative), mirroring csrc/token_kl/token_kl_math.h."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


def split_estimator(name: str) -> tuple[str, bool]:
    """An estimator's name as the kernels take it: (base name, straight-through), "k3+" -> ("k3", True)."""
    return name.removesuffix("+"), name.endswith("+")


@triton.jit
def kl_value_grad(d, EST: tl.constexpr, ST: tl.constexpr, clamp_d, clamp_v):
    """(value, d value / d logp) of estimator EST ("k1", "k2", "k3" or "abs") with torch.clamp
    semantics; ST: straight-through (the value, k2's gradient -d of the unclamped d)."""
    dc = tl.where(d < -clamp_d, -clamp_d, tl.where(d > clamp_d, clamp_d, d))
    if EST == "k1":
        v = -dc
        g = tl.full(dc.shape, 1.0, tl.float32)
    elif EST == "k2":
        v = 0.5 * dc * dc
        g = -dc
    elif EST == "k3":
        e = tl.exp(dc)
        v = (e - dc) - 1.0
        g = 1.0 - e
    else:
        v = tl.where(dc < 0.0, -dc, dc)
        g = tl.where(dc > 0.0, -1.0, tl.where(dc < 0.0, 1.0, 0.0))
    g = tl.where((d < -clamp_d) | (d > clamp_d), 0.0, g)
    g = tl.where((v < -clamp_v) | (v > clamp_v), 0.0, g)
    v = tl.where(v < -clamp_v, -clamp_v, tl.where(v > clamp_v, clamp_v, v))
    if ST:
        g = -d
    return v, g


@triton.jit
def _forward_kernel(
    logp_ptr, ref_ptr, out_ptr, n, clamp_d, clamp_v, EST: tl.constexpr, ST: tl.constexpr, BLOCK: tl.constexpr
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    x = tl.load(logp_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    r = tl.load(ref_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    v, _g = kl_value_grad(r - x, EST, ST, clamp_d, clamp_v)
    tl.store(out_ptr + offs, v, mask=ok)


@triton.jit
def _backward_kernel(
    grad_ptr, logp_ptr, ref_ptr, out_ptr, n, clamp_d, clamp_v, EST: tl.constexpr, ST: tl.constexpr, BLOCK: tl.constexpr
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    x = tl.load(logp_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    r = tl.load(ref_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    go = tl.load(grad_ptr + offs, mask=ok, other=0.0)
    _v, g = kl_value_grad(r - x, EST, ST, clamp_d, clamp_v)
    tl.store(out_ptr + offs, (go * g).to(out_ptr.dtype.element_ty), mask=ok)


def forward(logp: torch.Tensor, ref: torch.Tensor, estimator: str, clamp_d: float, clamp_v: float) -> torch.Tensor:
    """fp32 KL of contiguous logp/ref."""
    out = torch.empty(logp.shape, dtype=torch.float32, device=logp.device)
    n = logp.numel()
    if n:
        est, st = split_estimator(estimator)
        _forward_kernel[(triton.cdiv(n, BLOCK),)](logp, ref, out, n, clamp_d, clamp_v, EST=est, ST=st, BLOCK=BLOCK)
    return out


def backward(
    grad: torch.Tensor, logp: torch.Tensor, ref: torch.Tensor, estimator: str, clamp_d: float, clamp_v: float
) -> torch.Tensor:
    """grad_logp (logp's dtype) = grad (fp32, contiguous) * d kl / d logp."""
    out = torch.empty(logp.shape, dtype=logp.dtype, device=logp.device)
    n = logp.numel()
    if n:
        est, st = split_estimator(estimator)
        _backward_kernel[(triton.cdiv(n, BLOCK),)](
            grad, logp, ref, out, n, clamp_d, clamp_v, EST=est, ST=st, BLOCK=BLOCK
        )
    return out
