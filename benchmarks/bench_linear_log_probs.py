"""linear_log_probs on CPU: hidden 4096 x 1024, LM head 32768 x 1024 (no bias), fp32 and bf16,
against the unfused hidden @ W.T + log_softmax + gather and torch.nn.functional.linear_cross_entropy
(its reference path and, where this torch has it, its chunked path).

Timed: forward + backward (d hidden and d weight for a random per-token upstream gradient).
Memory (extra_info, MiB, see _memory.py): peak extra resident memory of forward + backward, the
returned gradients counted, beyond the inputs. Each call takes tens of seconds on 2 cores, so the
rounds are few.

    python -m pytest benchmarks/bench_linear_log_probs.py --benchmark-only -s
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import harmo_fast as harmo

try:
    from benchmarks._memory import peak_extra_bytes
except ImportError:  # run from inside benchmarks/
    from _memory import peak_extra_bytes

N, H, V = 4096, 1024, 32768
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIB = 1 << 20


def _unfused(h, w, y):
    return torch.log_softmax(h @ w.T, -1, dtype=torch.float32).gather(-1, y.unsqueeze(-1)).squeeze(-1)


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "unfused_matmul_log_softmax_gather": _unfused,
    "harmo_linear_log_probs_cpu": lambda h, w, y: harmo.linear_log_probs(h, w, y, backend="cpu"),
}
BASELINES = {"unfused_matmul_log_softmax_gather"}
if hasattr(F, "linear_cross_entropy"):
    METHODS["torch_linear_cross_entropy"] = lambda h, w, y: -F.linear_cross_entropy(h, w, y, reduction="none")
    BASELINES.add("torch_linear_cross_entropy")
    if hasattr(torch.nn, "LinearCrossEntropyOptions"):
        METHODS["torch_linear_cross_entropy_chunked"] = lambda h, w, y: (
            -F.linear_cross_entropy(h, w, y, reduction="none", options=torch.nn.LinearCrossEntropyOptions())
        )
        BASELINES.add("torch_linear_cross_entropy_chunked")


def _warm_up(method: str, dtype: torch.dtype) -> None:
    """One tiny forward + backward, so lazy imports and op registration are not counted as the
    big call's memory (the big call itself runs only once per measurement: it is slow)."""
    h = torch.randn(3, 8).to(dtype).requires_grad_()
    w = torch.randn(16, 8).to(dtype).requires_grad_()
    torch.autograd.grad(METHODS[method](h, w, torch.arange(3)).sum(), (h, w))


def make_call(dtype_name: str, method: str) -> Callable[[], object]:
    """Inputs and the forward + backward call of one method."""
    gen = torch.Generator().manual_seed(0)
    dtype = DTYPES[dtype_name]
    _warm_up(method, dtype)
    hidden = torch.randn(N, H, generator=gen).to(dtype).requires_grad_()
    weight = (torch.randn(V, H, generator=gen) * H**-0.5).to(dtype).requires_grad_()
    index = torch.randint(0, V, (N,), generator=gen)
    grad_out = torch.randn(N, generator=gen)
    f = METHODS[method]

    def forward_backward():
        logp = f(hidden, weight, index)
        return torch.autograd.grad(logp, (hidden, weight), grad_out.to(logp.dtype))

    return forward_backward


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("method", list(METHODS))
def test_linear_log_probs_forward_backward(benchmark, dtype_name, method):
    benchmark.group = f"linear_log_probs fwd+bwd {dtype_name} N={N} H={H} V={V}"
    benchmark.extra_info["baseline"] = method in BASELINES
    benchmark.pedantic(
        lambda call: call(), setup=lambda: ((make_call(dtype_name, method),), {}), rounds=2, iterations=1
    )
    peak = peak_extra_bytes("bench_linear_log_probs:make_call", dtype_name, method, warmup=False) / MIB
    logits_mib = N * V * 4 / MIB
    benchmark.extra_info.update(peak_fwd_bwd_MiB=round(peak, 1), fp32_logits_MiB=round(logits_mib))
