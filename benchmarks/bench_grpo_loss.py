"""grpo_loss forward + backward at N = 64 responses x T = 1024 tokens (and N = 256, T = 4096 with
HARMO_BENCH_LLM=1), fp32 and bf16.

Entries: each available kernel backend of harmo.grpo_loss; baselines: the torch reference
(grpo_loss_reference), a TRL-style eager `_compute_loss` body written here in TRL's style
(kernel_anchors.md 5.1: coef_1 = exp(logp - old), coef_2 = clamp, -min, optional k3 KL, masked
token-mean, TRL's clip metrics), the same body under `torch.compile`, and Liger's GRPO loss on
log-probs (Triton only, so skipped on a CPU with the reason). Memory (extra_info, see _memory.py):
peak extra resident memory of one forward + backward, the gradient it leaves in logp.grad included; `grad_bytes` is that
gradient's own size, so `extra_minus_grad` is what the path needs beyond its gradient.

    python -m pytest benchmarks/bench_grpo_loss.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch

import harmo_fast as harmo
from harmo_fast.ops.grpo_loss import grpo_loss_reference

try:
    from benchmarks._baselines import LLM_SHAPES, compiled, skip_unless
    from benchmarks._memory import peak_extra_bytes
except ImportError:  # run with benchmarks/ on sys.path (the memory subprocess)
    from _baselines import LLM_SHAPES, compiled, skip_unless
    from _memory import peak_extra_bytes

SHAPES = [(64, 1024)] + ([(256, 4096)] if LLM_SHAPES else [])
EPS = 0.2
# Timing the Triton interpreter or a missing GPU means nothing: device backends only with a GPU.
BACKENDS = ["cpu"] + (["triton", "cuda"] if torch.cuda.is_available() else [])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def trl_style_loss(logps, old_logps, advantages, completion_mask, ref_logps, beta):
    """TRL GRPOTrainer._compute_loss body (loss_type="bnpo", token-level ratio), written eagerly."""
    log_ratio = logps - old_logps
    coef_1 = torch.exp(log_ratio)
    coef_2 = torch.clamp(coef_1, 1 - EPS, 1 + EPS)
    per_token_loss1 = coef_1 * advantages.unsqueeze(1)
    per_token_loss2 = coef_2 * advantages.unsqueeze(1)
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    mask = completion_mask
    if beta != 0.0:
        per_token_kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        per_token_loss = per_token_loss + beta * per_token_kl
    loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    with torch.no_grad():
        denom = mask.sum().clamp(min=1.0)
        is_low = (coef_1 < 1 - EPS) & (advantages.unsqueeze(1) < 0)
        is_high = (coef_1 > 1 + EPS) & (advantages.unsqueeze(1) > 0)
        metrics = {
            "clip_low": (is_low.float() * mask).sum() / denom,
            "clip_high": (is_high.float() * mask).sum() / denom,
            "kl": (per_token_kl * mask).sum() / denom if beta != 0.0 else None,
        }
    return loss, metrics


def make_inputs(dtype: str, beta: float, n: int, t: int) -> dict:
    g = torch.Generator().manual_seed(0)
    dt = DTYPES[dtype]
    logp = (torch.randn(n, t, generator=g) * 0.5 - 1.0).to(dt).requires_grad_()
    old = (logp.detach().float() + torch.randn(n, t, generator=g) * 0.2).to(dt)
    ref = (logp.detach().float() + torch.randn(n, t, generator=g) * 0.2).to(dt) if beta else None
    adv = torch.randn(n, generator=g)
    lengths = torch.randint(t // 4, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).int()  # TRL's completion_mask is an int tensor
    return dict(logp=logp, old=old, ref=ref, adv=adv, mask=mask, beta=beta)


def _ours(backend: str):
    def run(x: dict) -> torch.Tensor:
        loss, _ = harmo.grpo_loss(x["logp"], x["old"], x["adv"], x["mask"], x["ref"], beta=x["beta"], backend=backend)
        return loss

    return run


def _reference(x: dict) -> torch.Tensor:
    return grpo_loss_reference(x["logp"], x["old"], x["adv"], x["mask"], x["ref"], beta=x["beta"])[0]


def _trl(x: dict) -> torch.Tensor:
    return trl_style_loss(x["logp"], x["old"], x["adv"], x["mask"], x["ref"], x["beta"])[0]


_trl_style_compiled_loss = compiled(trl_style_loss)


def _trl_compiled(x: dict) -> torch.Tensor:
    return _trl_style_compiled_loss(x["logp"], x["old"], x["adv"], x["mask"], x["ref"], x["beta"])[0]


IMPLS = {
    **{f"harmo_{b}": _ours(b) for b in BACKENDS},
    "torch_reference": _reference,
    "trl_style_eager": _trl,
    "trl_style_torch_compile": _trl_compiled,
}
BASELINES = ("torch_reference", "trl_style_eager", "trl_style_torch_compile")
# Entries that cannot run here, with the reason the ratio table shows as a skip.
UNAVAILABLE = {
    "liger_grpo_loss": "Liger's GRPO loss on log-probs (liger_kernel.ops.grpo_loss) is a Triton kernel with no CPU "
    "path; its CPU-capable GRPO loss is fused with the LM head (bench_linear_grpo_loss.py)",
}


def step_callable(impl: str, dtype: str, beta: float, n: int, t: int):
    """Forward + backward of one implementation; the memory subprocess builds it by name."""
    x = make_inputs(dtype, beta, n, t)
    fn = IMPLS[impl]

    def call() -> torch.Tensor:
        fn(x).backward()
        grad, x["logp"].grad = x["logp"].grad, None  # the caller owns it: nothing survives between calls
        return grad

    return call


@pytest.mark.parametrize("shape", SHAPES, ids=[f"N{n}xT{t}" for n, t in SHAPES])
@pytest.mark.parametrize("beta", [0.0, 0.04], ids=["beta0", "beta0.04"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("impl", [*IMPLS, *UNAVAILABLE])
def test_grpo_loss_forward_backward(benchmark, impl: str, dtype: str, beta: float, shape: tuple[int, int]) -> None:
    skip_unless(impl not in UNAVAILABLE, UNAVAILABLE.get(impl, ""))
    n, t = shape
    benchmark.group = f"grpo_loss fwd+bwd N={n} T={t} {dtype} beta={beta}"
    benchmark.extra_info["baseline"] = impl in BASELINES
    call = step_callable(impl, dtype, beta, n, t)
    call()  # warm-up outside the timed region: torch.compile compiles here
    benchmark(call)
    extra = peak_extra_bytes("bench_grpo_loss:step_callable", impl, dtype, beta, n, t)
    grad = n * t * DTYPES[dtype].itemsize
    benchmark.extra_info.update(extra_bytes=extra, grad_bytes=grad, extra_minus_grad=extra - grad)
