"""Sampling that does not depend on the batch a prompt group is generated in: each group of G rows
draws its tokens from its own generator, seeded from (run seed, step, global group index), so a
group's completions are the same whichever rank (or batch) generates it.

`GroupSampler` is a logits processor run inside greedy `generate`: it applies temperature, top-k and
top-p (the same order and semantics as Hugging Face's warpers), samples one token per row from the
row's group generator, and leaves only that token finite, so greedy's argmax takes it."""

from __future__ import annotations

import hashlib

import torch


def group_seed(seed: int, step: int, group: int) -> int:
    """A 63-bit seed for prompt group `group` (its index in the step's global batch) at `step`."""
    digest = hashlib.blake2b(f"{seed}:{step}:{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def group_seeds(seed: int, step: int, first: int, count: int) -> list[int]:
    """Seeds of groups first .. first + count - 1 of `step`."""
    return [group_seed(seed, step, g) for g in range(first, first + count)]


def warp(scores: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """float32 scores after temperature, then top-k, then top-p (nucleus; at least one token kept);
    removed tokens are -inf."""
    scores = scores.float()
    if temperature != 1.0:
        scores = scores / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= 1.0 - top_p
        remove[..., -1] = False
        scores = scores.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return scores


class GroupSampler:
    """Logits processor: row i belongs to group i // G (G = rows / len(seeds)) and samples from that
    group's generator; every group draws once per row and step, finished rows included, so a
    group's draws never depend on how long the other rows of the batch run."""

    def __init__(self, seeds: list[int], temperature: float, top_k: int, top_p: float):
        if not seeds:
            raise ValueError("GroupSampler needs one seed per prompt group")
        if temperature <= 0:
            raise ValueError(f"sampling temperature must be > 0, got {temperature}")
        self.seeds, self.temperature, self.top_k, self.top_p = seeds, temperature, top_k, top_p
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows, groups = scores.shape[0], len(self.seeds)
        if rows % groups:
            raise ValueError(f"{rows} rows do not split into {groups} groups of equal size")
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        # Inverse-CDF sampling, one uniform per row: exact, and far cheaper than multinomial's one
        # exponential draw per vocabulary entry. `right=True` never lands on a zero-probability token.
        cdf = warp(scores, self.temperature, self.top_k, self.top_p).softmax(dim=-1).double().cumsum(dim=-1)
        size = rows // groups
        u = torch.cat([torch.rand(size, 1, generator=gen, device=scores.device) for gen in self.generators])
        tokens = torch.searchsorted(cdf, u.double() * cdf[:, -1:], right=True).clamp_max_(scores.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens, 0.0)
