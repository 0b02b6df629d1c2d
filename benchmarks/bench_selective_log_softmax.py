"""selective_log_softmax on CPU: logits of 4096 x 32768 (as (8, 512, 32768): 8 completions of 512
tokens), fp32 and bf16, against torch.log_softmax(...).gather(...) and a TRL-style row loop.

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
    from benchmarks._memory import peak_extra_bytes
except ImportError:  # run from inside benchmarks/
    from _memory import peak_extra_bytes

SHAPE = (8, 512, 32768)
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


METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "torch_log_softmax_gather": lambda z, y: (
        torch.log_softmax(z, -1, dtype=torch.float32).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    ),
    "trl_row_loop": trl_style_selective_log_softmax,
    "harmo_cpu": lambda z, y: harmo.selective_log_softmax(z, y, backend="cpu"),
    "harmo_cpu_inplace_backward": lambda z, y: harmo.selective_log_softmax(z, y, inplace_backward=True, backend="cpu"),
}
BASELINES = {"torch_log_softmax_gather", "trl_row_loop"}


def make_call(dtype_name: str, method: str, mode: str) -> Callable[[], object]:
    """Inputs for one method, and the call to time or measure: mode "forward" or "forward_backward"."""
    gen = torch.Generator().manual_seed(0)
    base = (torch.randn(SHAPE, generator=gen) * 4).to(DTYPES[dtype_name]).requires_grad_()
    # The in-place backward needs non-leaf logits, as they come out of an LM head.
    logits = base * 1.0 if method == "harmo_cpu_inplace_backward" else base
    index = torch.randint(0, SHAPE[-1], SHAPE[:-1], generator=gen)
    grad_out = torch.randn(SHAPE[:-1], generator=gen)
    f = METHODS[method]
    if mode == "forward":
        return lambda: f(logits, index)

    def forward_backward():
        logp = f(logits, index)
        (grad,) = torch.autograd.grad(logp, logits, grad_out.to(logp.dtype))
        return grad

    return forward_backward


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("method", list(METHODS))
def test_selective_log_softmax_forward_backward(benchmark, dtype_name, method):
    benchmark.group = f"selective_log_softmax fwd+bwd {dtype_name} {'x'.join(map(str, SHAPE))}"
    benchmark.extra_info["baseline"] = method in BASELINES
    benchmark.pedantic(
        lambda call: call(),
        setup=lambda: ((make_call(dtype_name, method, "forward_backward"),), {}),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    logits_mib = torch.Size(SHAPE).numel() * torch.empty(0, dtype=DTYPES[dtype_name]).element_size() / MIB
    me = "bench_selective_log_softmax:make_call"
    fwd = peak_extra_bytes(me, dtype_name, method, "forward") / MIB
    fwd_bwd = peak_extra_bytes(me, dtype_name, method, "forward_backward") / MIB
    benchmark.extra_info.update(
        logits_MiB=round(logits_mib),
        peak_fwd_MiB=round(fwd, 1),
        peak_fwd_bwd_MiB=round(fwd_bwd, 1),
        fwd_over_logits=round(fwd / logits_mib, 3),
        fwd_bwd_over_logits=round(fwd_bwd / logits_mib, 3),
    )
