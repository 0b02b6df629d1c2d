"""length_penalty at N = 8192 responses: groups of 8 (contiguous) and ragged, unordered group ids.

Baselines: the torch reference and a straightforward Python loop over groups (the way the public
length rewards are written, kernel_anchors.md section 6).

    python -m pytest benchmarks/bench_length_penalty.py --benchmark-only
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

import harmo_fast as harmo
from harmo_fast.ops.length_penalty import length_penalty_reference

N, G = 8192, 8
P_MAX, TAU = 0.5, 0.5
BACKENDS = ["cpu"] + (["triton", "cuda"] if torch.cuda.is_available() else [])


def python_loop(lengths: torch.Tensor, correct: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per group: the shortest correct length, then a linear penalty for shorter incorrect ones."""
    lens, ok, gid = lengths.tolist(), correct.tolist(), ids.tolist()
    members: dict = defaultdict(list)
    for i, g in enumerate(gid):
        members[g].append(i)
    out = [0.0] * len(lens)
    for rows in members.values():
        anchors = [lens[i] for i in rows if ok[i]]
        if not anchors:
            continue
        anchor = min(anchors)
        for i in rows:
            if not ok[i] and lens[i] < anchor:
                out[i] = -P_MAX * min(1.0, (anchor - lens[i]) / anchor / TAU)
    return torch.tensor(out, dtype=torch.float32)


def _inputs(layout: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 1024, (N,), generator=gen)
    correct = torch.rand(N, generator=gen) < 0.4
    if layout == "contiguous":
        ids = torch.arange(N) // G
    else:
        sizes = torch.randint(1, 16, (N,), generator=gen)
        ids = torch.repeat_interleave(torch.arange(N), sizes)[:N]
        ids = ids[torch.randperm(N, generator=gen)]
    return lengths, correct, ids


def _methods(layout: str) -> dict:
    grouping = (lambda ids: {"group_size": G}) if layout == "contiguous" else (lambda ids: {"group_ids": ids})
    methods = {
        "torch_reference": (
            lambda L, c, ids: length_penalty_reference(L, c, p_max=P_MAX, tau=TAU, **grouping(ids)),
            True,
        ),
        "python_loop": (python_loop, True),
    }
    for backend in BACKENDS:
        methods[f"harmo_{backend}"] = (
            lambda L, c, ids, b=backend: harmo.length_penalty(L, c, p_max=P_MAX, tau=TAU, backend=b, **grouping(ids)),
            False,
        )
    return methods


CASES = [(layout, name) for layout in ("contiguous", "ragged") for name in _methods(layout)]


@pytest.mark.parametrize(("layout", "method"), CASES)
def test_length_penalty(benchmark, layout: str, method: str) -> None:
    lengths, correct, ids = _inputs(layout)
    fn, baseline = _methods(layout)[method]
    device = "cuda" if method in ("harmo_triton", "harmo_cuda") else "cpu"
    lengths, correct, ids = lengths.to(device), correct.to(device), ids.to(device)
    benchmark.group = f"length_penalty N={N} {'G=8' if layout == 'contiguous' else 'ragged ids'}"
    benchmark.extra_info["baseline"] = baseline
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run() -> torch.Tensor:
        out = fn(lengths, correct, ids)
        sync()
        return out

    out = benchmark.pedantic(run, rounds=10 if method == "python_loop" else 200, iterations=1, warmup_rounds=1)
    torch.testing.assert_close(out.cpu(), python_loop(*_inputs(layout)))
