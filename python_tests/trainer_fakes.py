"""Shared helpers of the trainer tests: tiny-model configs and a deterministic stand-in reward
pipeline that gives every group a reward spread (a random tiny policy almost never answers right,
so the real rewards would give all-zero advantages and no update to test)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from harmo_fast.rewards.types import RewardResult, RewardSample, Verdict
from harmo_fast.trainer.config import Config, load_config

TINY = (
    "{hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, vision_embed_dim: 32, vision_depth: 1, "
    "vision_num_heads: 2}"
)


class LetterRewards:
    """reward = share of the letter 'e' in the completion (deterministic, varies across samples)."""

    def __init__(self) -> None:
        self.closed = False
        self.calls = 0

    def score(self, samples: list[RewardSample]) -> RewardResult:
        self.calls += 1
        total = [s.completion.count("e") / max(1, len(s.completion)) for s in samples]
        verdicts = [Verdict(score=t, correct=t > 0.1, reason="ok" if t > 0.1 else "mismatch") for t in total]
        comps = {"hybrid": total, "length": [0.0] * len(samples), "format": [-0.5] * len(samples)}
        return RewardResult(total=total, components=comps, verdicts=verdicts, timings={"score": 0.0})

    def submit(self, samples: list[RewardSample]) -> Future:
        fut: Future = Future()
        fut.set_result(self.score(samples))
        return fut

    def close(self) -> None:
        self.closed = True


def tiny_config(data_dir: Path, *overrides: str, model: str = "tiny-lm") -> Config:
    """A run of a few seconds: tiny model, 2 prompts x G=4, 8 new tokens, no warm-up, no evals."""
    base = [
        f"model.name={model}", f"model.builtin_overrides={TINY}",
        f"model.freeze_vision={str(model == 'tiny-vlm').lower()}",
        f"data.train={data_dir / 'train.jsonl'}", f"data.test={data_dir / 'test.jsonl'}",
        "rollout.max_new_tokens=8", "algorithm.group_size=4", "algorithm.prompts_per_step=2",
        "trainer.steps=3", "trainer.num_threads=1", "trainer.lr=1e-3", "trainer.lr_warmup_steps=0",
        "trainer.device=cpu",
        "warmup.steps=0", "eval.at_start=false", "eval.at_end=false", "eval.max_samples=4",
        "logging.progress_bar=false", "logging.tensorboard=false", "logging.sample_every=1",
        "checkpoint.save_final_model=false", "rewards.num_workers=1", "rewards.model_rm.kind=none",
    ]  # fmt: skip
    return load_config(None, base + list(overrides))
