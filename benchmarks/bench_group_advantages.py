"""group_advantages at N = 8192 rewards: groups of 8 (contiguous) and ragged, unordered group ids.

Baselines: the torch reference (harmo_fast's float64 NaN-aware definition), a verl-style per-group
Python loop (dict of lists per group id, torch.mean / torch.std per group, kernel_anchors.md 3.2)
and a TRL-style view / mean / std / repeat_interleave formulation (3.1; contiguous groups only).

    python -m pytest benchmarks/bench_group_advantages.py --benchmark-only
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest
import torch

import harmo_fast as harmo
from harmo_fast.ops.group_advantages import group_advantages_reference

N, G = 8192, 8
# Timing the Triton interpreter or a missing GPU means nothing: device backends only with a GPU.
BACKENDS = ["cpu"] + (["triton", "cuda"] if torch.cuda.is_available() else [])


def verl_style_loop(
    scores: torch.Tensor, index: np.ndarray, norm_adv_by_std: bool, epsilon: float = 1e-6
) -> torch.Tensor:
    """verl's compute_grpo_outcome_advantage loop (singletons: mean 0, std 1)."""
    scores = scores.clone()
    id2score: dict = defaultdict(list)
    id2mean, id2std = {}, {}
    bsz = scores.shape[0]
    for i in range(bsz):
        id2score[index[i]].append(scores[i])
    for idx, members in id2score.items():
        if len(members) == 1:
            id2mean[idx] = torch.tensor(0.0)
            id2std[idx] = torch.tensor(1.0)
        else:
            group = torch.stack(members)
            id2mean[idx] = torch.mean(group)
            id2std[idx] = torch.std(group)
    for i in range(bsz):
        if norm_adv_by_std:
            scores[i] = (scores[i] - id2mean[index[i]]) / (id2std[index[i]] + epsilon)
        else:
            scores[i] = scores[i] - id2mean[index[i]]
    return scores


def trl_style(rewards: torch.Tensor, num_generations: int, scale: bool) -> torch.Tensor:
    """TRL's grouped mean/std with repeat_interleave (eps 1e-4)."""
    grouped = rewards.view(-1, num_generations)
    mean = grouped.mean(dim=1).repeat_interleave(num_generations, dim=0)
    advantages = rewards - mean
    if scale:
        std = grouped.std(dim=1).repeat_interleave(num_generations, dim=0)
        advantages = advantages / (std + 1e-4)
    return advantages


def _inputs(layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 3, (N,), generator=gen).float() * 0.5 + torch.rand(N, generator=gen) * 0.1
    if layout == "contiguous":
        ids = torch.arange(N) // G
    else:  # ragged sizes 1..15, then shuffled
        sizes = torch.randint(1, 16, (N,), generator=gen)
        ids = torch.repeat_interleave(torch.arange(N), sizes)[:N]
        ids = ids[torch.randperm(N, generator=gen)]
    return rewards, ids


def _methods(layout: str, scale: str) -> dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bool]]:
    """name -> (fn(rewards, ids), is_baseline)."""
    grouping = (lambda ids: {"group_size": G}) if layout == "contiguous" else (lambda ids: {"group_ids": ids})
    methods = {
        "torch_reference": (lambda r, ids: group_advantages_reference(r, scale=scale, **grouping(ids)), True),
        "verl_loop": (lambda r, ids: verl_style_loop(r, ids.numpy(), scale == "group"), True),
    }
    if layout == "contiguous":
        methods["trl_view_mean_std"] = (lambda r, ids: trl_style(r, G, scale == "group"), True)
    for backend in BACKENDS:
        methods[f"harmo_{backend}"] = (
            lambda r, ids, b=backend: harmo.group_advantages(r, scale=scale, backend=b, **grouping(ids)),
            False,
        )
    return methods


CASES = [
    (layout, scale, name)
    for layout in ("contiguous", "ragged")
    for scale in ("none", "group")
    for name in _methods(layout, scale)
]


@pytest.mark.parametrize(("layout", "scale", "method"), CASES)
def test_group_advantages(benchmark, layout: str, scale: str, method: str) -> None:
    rewards, ids = _inputs(layout)
    fn, baseline = _methods(layout, scale)[method]
    device = "cuda" if method in ("harmo_triton", "harmo_cuda") else "cpu"
    rewards, ids = rewards.to(device), ids.to(device)
    benchmark.group = f"group_advantages N={N} {'G=8' if layout == 'contiguous' else 'ragged ids'} scale={scale}"
    benchmark.extra_info["baseline"] = baseline
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run() -> torch.Tensor:
        out = fn(rewards, ids)
        sync()
        return out

    rounds = 5 if method == "verl_loop" else 200
    out = benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    assert out.shape == (N,)
