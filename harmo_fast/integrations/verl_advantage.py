"""verl advantage estimator "harmo": HARMO's group length penalty, then its mean-only advantage.

Registered by importing `harmo_fast.integrations.verl`; select it with `algorithm.adv_estimator=harmo`
(with `reward.reward_manager.name=harmo`, whose rewards carry the correctness bit this estimator
reads: see `verl_carrier`). Per prompt group (verl's uid `index`, a numpy array of any hashable
ids): R = score + w_length * R_len, with R_len over the group's response lengths
(`response_mask` sums) and correctness, then A = R - mean_group(R) (no division by the std: verl's
`norm_adv_by_std_in_grpo` does not apply; a group of one gets A = 0), broadcast over the response
tokens. The settings (`w_length`, `length.*`) are read from `reward.reward_kwargs` of the trainer
config, the same keys the reward manager reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from harmo_fast.integrations.verl_carrier import decode
from harmo_fast.integrations.verl_config import trainer_reward_config
from harmo_fast.ops.group_advantages import group_advantages
from harmo_fast.ops.length_penalty import length_penalty


def group_index(index: Iterable[Any], n: int) -> torch.Tensor:
    """int64 group ids (N,), numbered in order of first appearance, of any hashable ids."""
    first: dict[Any, int] = {}
    ids = [first.setdefault(u, len(first)) for u in index]
    if len(ids) != n:
        raise ValueError(f"harmo advantage: index has {len(ids)} entries for {n} responses")
    return torch.tensor(ids, dtype=torch.int64)


def harmo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any = None,
    config: Any = None,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's advantage-estimator signature: (advantages, returns), both (N, T) (see the module
    docstring). Other keyword arguments verl passes are ignored."""
    if index is None:
        raise ValueError("harmo advantage: needs verl's uid index (data.non_tensor_batch['uid'])")
    if response_mask.shape != token_level_rewards.shape:
        raise ValueError(
            f"harmo advantage: response_mask {tuple(response_mask.shape)} and token_level_rewards "
            f"{tuple(token_level_rewards.shape)} differ in shape"
        )
    cfg = trainer_reward_config(config, relative=True)
    scores, correct = decode(token_level_rewards)
    groups = group_index(index, scores.shape[0])
    total = scores.cpu()
    if cfg.length.enabled and cfg.w_length != 0.0:
        lengths = response_mask.detach().cpu().sum(-1).to(torch.int64)
        penalty = length_penalty(
            lengths,
            correct.cpu(),
            group_ids=groups,
            p_max=cfg.length.p_max,
            tau=cfg.length.tau,
            shape=cfg.length.shape,
        )
        total = (total.double() + cfg.w_length * penalty.double()).float()
    advantages = group_advantages(total, group_ids=groups).to(response_mask.device)
    advantages = advantages.unsqueeze(-1) * response_mask.to(advantages.dtype)
    return advantages, advantages
