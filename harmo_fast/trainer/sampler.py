"""Which prompts each step trains on: a seeded permutation per epoch, consumed in order. Its
position (epoch, offset) is part of a checkpoint, so a resumed run sees the same prompts."""

from __future__ import annotations

import torch


class PromptSampler:
    def __init__(self, n: int, seed: int, shuffle: bool = True):
        if n <= 0:
            raise ValueError("the training set is empty")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.offset = 0, 0

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def next(self, k: int) -> list[int]:
        """The next k sample indices, wrapping into the next epoch's order."""
        out: list[int] = []
        while len(out) < k:
            order = self._order(self.epoch)
            take = order[self.offset : self.offset + k - len(out)]
            out += take
            self.offset += len(take)
            if self.offset >= self.n:
                self.epoch, self.offset = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
