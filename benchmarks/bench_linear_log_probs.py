"""linear_log_probs on CPU: hidden 4096 x 1024, LM head 32768 x 1024 (no bias), fp32 and bf16,
against the unfused hidden @ W.T + log_softmax + gather (eager and under torch.compile),
torch.nn.functional.linear_cross_entropy (its reference path and, where this torch has it, its
chunked path), Liger's chunked selective log-prob (the torch path inside its fused linear GRPO loss)
and TRL's ChunkedLogProbFunction (its torch path off CUDA), each when the package is installed.
HARMO_BENCH_LLM=1 adds Qwen's vocabulary, V = 151936.

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
    from benchmarks._baselines import LLM_SHAPES, compiled, optional_module, skip_unless
    from benchmarks._memory import time_fresh_calls_and_peak_mib
except ImportError:  # run from inside benchmarks/
    from _baselines import LLM_SHAPES, compiled, optional_module, skip_unless
    from _memory import time_fresh_calls_and_peak_mib

SHAPES = [(4096, 1024, 32768)] + ([(4096, 1024, 151936)] if LLM_SHAPES else [])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIB = 1 << 20


def _unfused(h, w, y):
    return torch.log_softmax(h @ w.T, -1, dtype=torch.float32).gather(-1, y.unsqueeze(-1)).squeeze(-1)


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "unfused_matmul_log_softmax_gather": _unfused,
    "torch_compile_unfused": compiled(_unfused),
    "harmo_linear_log_probs_cpu": lambda h, w, y: harmo.linear_log_probs(h, w, y, backend="cpu"),
}
BASELINES = {"unfused_matmul_log_softmax_gather", "torch_compile_unfused"}
COMPILED = {"torch_compile_unfused"}
# Entries that cannot run here, with the reason the ratio table shows as a skip.
UNAVAILABLE: dict[str, str] = {}

_liger_ppo, _liger_missing = optional_module("liger_kernel.chunked_loss.fused_linear_ppo")
if _liger_ppo is not None:
    METHODS["liger_chunked_selective_log_prob"] = lambda h, w, y: _liger_ppo._ChunkedSelectiveLogProbFunction.apply(
        h, w, y, None, 1.0, _liger_ppo._SELECTIVE_LOGPROB_VOCAB_CHUNK_SIZE
    )
    BASELINES.add("liger_chunked_selective_log_prob")
else:
    UNAVAILABLE["liger_chunked_selective_log_prob"] = f"liger-kernel not installed: {_liger_missing}"

_trl_utils, _trl_missing = optional_module("trl.trainer.utils")
if _trl_utils is not None:
    # TRL's fused LM-head path: no optional outputs, its own vocabulary chunk width.
    METHODS["trl_chunked_log_prob"] = lambda h, w, y: _trl_utils._ChunkedLogProbFunction.apply(
        h, w, None, y, 1.0, _trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, ()
    )[0]
    BASELINES.add("trl_chunked_log_prob")
else:
    UNAVAILABLE["trl_chunked_log_prob"] = f"trl not installed: {_trl_missing}"
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


def make_call(dtype_name: str, method: str, shape: list[int]) -> Callable[[], object]:
    """Inputs and the forward + backward call of one method."""
    n, h, v = shape
    gen = torch.Generator().manual_seed(0)
    dtype = DTYPES[dtype_name]
    _warm_up(method, dtype)
    hidden = torch.randn(n, h, generator=gen).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=gen) * h**-0.5).to(dtype).requires_grad_()
    index = torch.randint(0, v, (n,), generator=gen)
    grad_out = torch.randn(n, generator=gen)
    f = METHODS[method]

    def forward_backward():
        logp = f(hidden, weight, index)
        return torch.autograd.grad(logp, (hidden, weight), grad_out.to(logp.dtype))

    return forward_backward


@pytest.mark.parametrize("shape", SHAPES, ids=[f"N{n}xH{h}xV{v}" for n, h, v in SHAPES])
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("method", [*METHODS, *UNAVAILABLE])
def test_linear_log_probs_forward_backward(benchmark, dtype_name, method, shape):
    skip_unless(method not in UNAVAILABLE, UNAVAILABLE.get(method, ""))
    shape = list(shape)
    n, h, v = shape
    benchmark.group = f"linear_log_probs fwd+bwd {dtype_name} N={n} H={h} V={v}"
    benchmark.extra_info["baseline"] = method in BASELINES
    compiles = method in COMPILED  # its warm-up (the compile) must stay out of the time and the memory
    peak = time_fresh_calls_and_peak_mib(
        benchmark, make_call, "bench_linear_log_probs:make_call", dtype_name, method, shape, compiles=compiles
    )
    logits_mib = n * v * 4 / MIB
    benchmark.extra_info.update(peak_fwd_bwd_MiB=round(peak, 1), fp32_logits_MiB=round(logits_mib))
