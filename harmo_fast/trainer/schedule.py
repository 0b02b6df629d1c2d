"""Learning-rate schedule: linear warm-up from 0, then cosine decay to `min_ratio` x the peak
(or constant). Counted in optimizer steps."""

from __future__ import annotations

import math

import torch


class WarmupCosine:
    """The multiplier of the peak lr at optimizer step `step` (a picklable LambdaLR function)."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0, kind: str = "cosine"):
        if kind not in ("cosine", "constant"):
            raise ValueError(f"lr schedule must be 'cosine' or 'constant', got {kind!r}")
        self.warmup_steps = max(0, warmup_steps)
        self.total_steps = max(1, total_steps)
        self.min_ratio = min_ratio
        self.kind = kind

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.kind == "constant":
            return 1.0
        decay = self.total_steps - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, decay))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0, kind: str = "cosine"
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio, kind))
