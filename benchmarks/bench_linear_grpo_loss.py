"""The GRPO loss straight from the last hidden states on CPU: B = 8 completions x T = 512 tokens
(4096 tokens), H = 1024, V = 32768 (V = 151936 too with HARMO_BENCH_LLM=1), k3 KL with beta = 0.04
against precomputed reference log-probs, token-mean loss (TRL's "bnpo"), fp32 and bf16.

Timed: forward + backward to d hidden and d weight. Entries: harmo_fast's fused op
(linear_grpo_loss: 3 matmuls, gradients in the forward) and its two-op path (linear_log_probs,
then grpo_loss: 4 matmuls); baselines: the eager matmul + log_softmax + gather + TRL-style
loss, the same torch code under torch.compile, and Liger's LigerFusedLinearGRPOLoss (torch +
torch.compile, gradients computed in its forward chunk by chunk) when liger-kernel is installed.
Memory (extra_info, MiB, see _memory.py): peak extra resident memory of forward + backward, the
returned gradients counted, beyond the inputs.

    python -m pytest benchmarks/bench_linear_grpo_loss.py --benchmark-only -rs
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import harmo_fast as harmo

try:
    from benchmarks._baselines import LLM_SHAPES, compiled, optional_module, skip_unless
    from benchmarks._memory import time_fresh_calls_and_peak_mib
    from benchmarks.bench_grpo_loss import EPS, trl_style_loss
except ImportError:  # run from inside benchmarks/
    from _baselines import LLM_SHAPES, compiled, optional_module, skip_unless
    from _memory import time_fresh_calls_and_peak_mib
    from bench_grpo_loss import EPS, trl_style_loss

SHAPES = [(8, 512, 1024, 32768)] + ([(8, 512, 1024, 151936)] if LLM_SHAPES else [])
BETA = 0.04
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIB = 1 << 20


def eager_hidden_to_loss(hidden, weight, ids, old, adv, mask, ref) -> torch.Tensor:
    """Full (B*T, V) logits, fp32 log-softmax, gather, then the TRL-style loss."""
    logits = hidden.flatten(0, 1) @ weight.T
    logp = torch.log_softmax(logits, -1, dtype=torch.float32).gather(-1, ids.reshape(-1, 1)).view(ids.shape)
    return trl_style_loss(logp, old, adv, mask, ref, BETA)[0]


def harmo_hidden_to_loss(hidden, weight, ids, old, adv, mask, ref) -> torch.Tensor:
    logp = harmo.linear_log_probs(hidden.flatten(0, 1), weight, ids.reshape(-1), backend="cpu").view(ids.shape)
    return harmo.grpo_loss(logp, old, adv, mask, ref, beta=BETA, eps_low=EPS, backend="cpu")[0]


def harmo_linear_grpo_loss(hidden, weight, ids, old, adv, mask, ref) -> torch.Tensor:
    return harmo.linear_grpo_loss(hidden, weight, ids, old, adv, mask, ref, beta=BETA, eps_low=EPS, backend="cpu")[0]


METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "eager_matmul_log_softmax_gather_loss": eager_hidden_to_loss,
    "torch_compile_matmul_log_softmax_gather_loss": compiled(eager_hidden_to_loss),
    "harmo_linear_log_probs_then_grpo_loss": harmo_hidden_to_loss,
    "harmo_linear_grpo_loss": harmo_linear_grpo_loss,
}
BASELINES = {"eager_matmul_log_softmax_gather_loss", "torch_compile_matmul_log_softmax_gather_loss"}
COMPILED = {"torch_compile_matmul_log_softmax_gather_loss", "liger_fused_linear_grpo_loss"}
# Entries that cannot run here, with the reason the ratio table shows as a skip.
UNAVAILABLE: dict[str, str] = {}

_liger, _liger_missing = optional_module("liger_kernel.chunked_loss")
if _liger is not None:
    _liger_loss = _liger.LigerFusedLinearGRPOLoss(
        beta=BETA, use_ref_model=True, epsilon_low=EPS, epsilon_high=EPS, loss_type="bnpo"
    )
    METHODS["liger_fused_linear_grpo_loss"] = lambda hidden, weight, ids, old, adv, mask, ref: _liger_loss(
        hidden, weight, ids, mask, adv, ref_per_token_logps=ref, old_per_token_logps=old
    )[0]
    BASELINES.add("liger_fused_linear_grpo_loss")
else:
    UNAVAILABLE["liger_fused_linear_grpo_loss"] = f"liger-kernel not installed: {_liger_missing}"


def make_call(dtype_name: str, method: str, shape: list[int]) -> Callable[[], object]:
    """Inputs and the forward + backward call of one method; returns (d hidden, d weight)."""
    b, t, h, v = shape
    gen = torch.Generator().manual_seed(0)
    dtype = DTYPES[dtype_name]
    hidden = torch.randn(b, t, h, generator=gen).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=gen) * h**-0.5).to(dtype).requires_grad_()
    ids = torch.randint(0, v, (b, t), generator=gen)
    with torch.no_grad():
        logp = torch.log_softmax(hidden.flatten(0, 1).float() @ weight.float().T, -1).gather(-1, ids.reshape(-1, 1))
    logp = logp.view(b, t)
    old = logp + 0.1 * torch.randn(b, t, generator=gen)
    ref = logp + 0.1 * torch.randn(b, t, generator=gen)
    adv = torch.randn(b, generator=gen)
    lengths = torch.randint(t // 4, t + 1, (b,), generator=gen)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).int()
    f = METHODS[method]

    def forward_backward():
        loss = f(hidden, weight, ids, old, adv, mask, ref)
        return torch.autograd.grad(loss, (hidden, weight))

    return forward_backward


@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{b}xT{t}xH{h}xV{v}" for b, t, h, v in SHAPES])
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("method", [*METHODS, *UNAVAILABLE])
def test_linear_grpo_loss_forward_backward(benchmark, dtype_name, method, shape):
    skip_unless(method not in UNAVAILABLE, UNAVAILABLE.get(method, ""))
    shape = list(shape)
    b, t, h, v = shape
    benchmark.group = f"hidden -> GRPO loss fwd+bwd {dtype_name} tokens={b * t} H={h} V={v}"
    benchmark.extra_info["baseline"] = method in BASELINES
    compiles = method in COMPILED  # its warm-up (the compile) must stay out of the time and the memory
    peak = time_fresh_calls_and_peak_mib(
        benchmark, make_call, "bench_linear_grpo_loss:make_call", dtype_name, method, shape, compiles=compiles
    )
    benchmark.extra_info.update(peak_fwd_bwd_MiB=round(peak, 1), fp32_logits_MiB=round(b * t * v * 4 / MIB))
