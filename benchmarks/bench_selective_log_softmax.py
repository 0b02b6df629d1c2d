"""selective_log_softmax on CPU: logits of 4096 x 32768 (as (8, 512, 32768): 8 completions of 512
tokens), fp32 and bf16, against torch.log_softmax(...).gather(...) eager and under torch.compile, a
TRL-style row loop, TRL's own selective_log_softmax when trl is installed, and Liger's (Triton only:
skipped with the reason). HARMO_BENCH_LLM=1 adds Qwen's vocabulary: 1024 and 4096 tokens x 151936.

Timed: forward + backward (d logits for a random upstream gradient). Memory (extra_info, MiB, see
_memory.py): peak extra resident memory of the forward (with autograd recording, output and saved
tensors kept) and of forward + backward (the returned gradient counted), each beyond the inputs.

    python -m pytest benchmarks/bench_selective_log_softmax.py --benchmark-only -s
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import harmo_fast as harmo

try:
    from benchmarks._baselines import LLM_SHAPES, compiled, optional_module, skip_unless
    from benchmarks._memory import peak_extra_bytes
except ImportError:  # run from inside benchmarks/
    from _baselines import LLM_SHAPES, compiled, optional_module, skip_unless
    from _memory import peak_extra_bytes

SHAPES = [(8, 512, 32768)] + ([(2, 512, 151936), (8, 512, 151936)] if LLM_SHAPES else [])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIB = 1 << 20


def trl_style_selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """TRL's recipe (kernel_anchors.md 1.1): fp32 logits -> gathered logit minus a logsumexp taken
    one leading slice at a time; half-precision logits -> log_softmax per leading slice and gather,
    returned in the logits' dtype."""
    if logits.dtype in (torch.float32, torch.float64):
        picked = torch.gather(logits, -1, index.unsqueeze(-1)).squeeze(-1)
        lse = torch.stack([torch.logsumexp(part, dim=-1) for part in logits])
        return picked - lse
    rows = []
    for part_logits, part_index in zip(logits, index):
        part_logp = torch.nn.functional.log_softmax(part_logits, dim=-1)
        rows.append(part_logp.gather(-1, part_index.unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows)


def log_softmax_gather(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The plain torch recipe, fp32 log-probs."""
    return torch.log_softmax(logits, -1, dtype=torch.float32).gather(-1, index.unsqueeze(-1)).squeeze(-1)


_trl_utils, _trl_missing = optional_module("trl.trainer.utils")

METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "torch_log_softmax_gather": log_softmax_gather,
    "torch_compile_log_softmax_gather": compiled(log_softmax_gather),
    "trl_row_loop": trl_style_selective_log_softmax,
    "harmo_cpu": lambda z, y: harmo.selective_log_softmax(z, y, backend="cpu"),
    "harmo_cpu_inplace_backward": lambda z, y: harmo.selective_log_softmax(z, y, inplace_backward=True, backend="cpu"),
}
BASELINES = {"torch_log_softmax_gather", "torch_compile_log_softmax_gather", "trl_row_loop"}
if _trl_utils is not None:
    METHODS["trl_selective_log_softmax"] = _trl_utils.selective_log_softmax
    BASELINES.add("trl_selective_log_softmax")
# Entries that cannot run here, with the reason the ratio table shows as a skip.
UNAVAILABLE = {
    "liger_fused_selective_log_softmax": "Liger's fused_selective_log_softmax is a Triton kernel with no CPU path "
    "(and runs under no_grad: no backward to time)",
}
if _trl_utils is None:
    UNAVAILABLE["trl_selective_log_softmax"] = f"trl not installed: {_trl_missing}"


def make_call(dtype_name: str, method: str, mode: str, shape: list[int]) -> Callable[[], object]:
    """Inputs for one method, and the call to time or measure: mode "forward" or "forward_backward"."""
    gen = torch.Generator().manual_seed(0)
    base = (torch.randn(shape, generator=gen) * 4).to(DTYPES[dtype_name]).requires_grad_()
    # The in-place backward needs non-leaf logits, as they come out of an LM head.
    logits = base * 1.0 if method == "harmo_cpu_inplace_backward" else base
    index = torch.randint(0, shape[-1], shape[:-1], generator=gen)
    grad_out = torch.randn(shape[:-1], generator=gen)
    f = METHODS[method]
    if mode == "forward":
        return lambda: f(logits, index)

    def forward_backward():
        logp = f(logits, index)
        (grad,) = torch.autograd.grad(logp, logits, grad_out.to(logp.dtype))
        return grad

    return forward_backward


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("method", [*METHODS, *UNAVAILABLE])
def test_selective_log_softmax_forward_backward(benchmark, dtype_name, method, shape):
    skip_unless(method not in UNAVAILABLE, UNAVAILABLE.get(method, ""))
    shape = list(shape)
    benchmark.group = f"selective_log_softmax fwd+bwd {dtype_name} {'x'.join(map(str, shape))}"
    benchmark.extra_info["baseline"] = method in BASELINES
    benchmark.pedantic(
        lambda call: call(),
        setup=lambda: ((make_call(dtype_name, method, "forward_backward", shape),), {}),
        rounds=3,
        iterations=1,
        warmup_rounds=1,  # outside the timed rounds: torch.compile compiles here
    )
    logits_mib = torch.Size(shape).numel() * torch.empty(0, dtype=DTYPES[dtype_name]).element_size() / MIB
    me = "bench_selective_log_softmax:make_call"
    fwd = peak_extra_bytes(me, dtype_name, method, "forward", shape) / MIB
    fwd_bwd = peak_extra_bytes(me, dtype_name, method, "forward_backward", shape) / MIB
    benchmark.extra_info.update(
        logits_MiB=round(logits_mib),
        peak_fwd_MiB=round(fwd, 1),
        peak_fwd_bwd_MiB=round(fwd_bwd, 1),
        fwd_over_logits=round(fwd / logits_mib, 3),
        fwd_bwd_over_logits=round(fwd_bwd / logits_mib, 3),
    )
