"""Group advantages of a batch whose rewards are still being computed in the background."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager

import torch

import harmo_fast as harmo
from harmo_fast.rewards.types import RewardResult
from harmo_fast.trainer.config import AlgorithmConfig


class PendingAdvantages:
    """`get()` waits for the reward future (timed as rewards_wait), computes the mean-only group
    advantages once (timed as advantages, docs/SPEC.md §2) and returns them from then on."""

    def __init__(
        self,
        future: Future,
        algorithm: AlgorithmConfig,
        device: torch.device,
        timer: Callable[[str], AbstractContextManager],
    ):
        self.future, self.algorithm, self.device, self.timer = future, algorithm, device, timer
        self.result: RewardResult | None = None
        self.adv: torch.Tensor | None = None

    @property
    def ready(self) -> bool:
        """Whether the advantages were already computed (no wait left)."""
        return self.adv is not None

    def get(self) -> torch.Tensor:
        if self.adv is None:
            a = self.algorithm
            with self.timer("rewards_wait"):
                self.result = self.future.result()
            with self.timer("advantages"):
                rewards = torch.tensor(self.result.total, dtype=torch.float32, device=self.device)
                self.adv = harmo.group_advantages(
                    rewards, group_size=a.group_size, scale=a.advantage_scale, eps=a.advantage_eps
                )
        return self.adv


def trained_fraction(adv: torch.Tensor, beta: float) -> float:
    """Share of responses that get a gradient: with beta = 0 a zero advantage contributes none."""
    if beta != 0:
        return 1.0
    nonzero = (adv != 0).tolist()
    return sum(nonzero) / len(nonzero)
