"""token_kl (k3) forward + backward at 64 x 1024 tokens, fp32 and bf16: each available kernel
backend against the torch reference and the eager TRL formula exp(ref - logp) - (ref - logp) - 1.

    python -m pytest benchmarks/bench_token_kl.py --benchmark-only
"""

from __future__ import annotations

import functools

import pytest
import torch

import harmo_fast as harmo
from harmo_fast.ops.token_kl import token_kl_reference

N, T = 64, 1024
BACKENDS = ["cpu"] + (["triton", "cuda"] if torch.cuda.is_available() else [])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def trl_style_kl(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return torch.exp(ref - logp) - (ref - logp) - 1


IMPLS = {
    **{f"harmo_{b}": functools.partial(harmo.token_kl, backend=b) for b in BACKENDS},
    "torch_reference": token_kl_reference,
    "trl_style_eager": trl_style_kl,
}
BASELINES = ("torch_reference", "trl_style_eager")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_token_kl_forward_backward(benchmark, impl: str, dtype: str) -> None:
    benchmark.group = f"token_kl k3 fwd+bwd {N}x{T} {dtype}"
    benchmark.extra_info["baseline"] = impl in BASELINES
    g = torch.Generator().manual_seed(0)
    logp = (torch.randn(N, T, generator=g) - 1.0).to(DTYPES[dtype]).requires_grad_()
    ref = (logp.detach().float() + torch.randn(N, T, generator=g) * 0.3).to(DTYPES[dtype])
    fn = IMPLS[impl]

    def step() -> None:
        logp.grad = None
        fn(logp, ref).sum().backward()

    benchmark(step)
