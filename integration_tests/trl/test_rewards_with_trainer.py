"""HARMO's reward functions inside the real GRPOTrainer: the stock trainer with num_generations
passed in, and HarmoGRPOTrainer, which binds them (no num_generations needed). Also checks the
layout the grouping relies on: TRL hands a process its completions in blocks of num_generations
per prompt."""

from __future__ import annotations

import math

import pytest
from test_trainer_parity import _config
from tiny_setup import arithmetic_prompts, tiny_tokenizer
from trl import GRPOTrainer

from harmo_fast.integrations.trl import HarmoGRPOTrainer
from harmo_fast.integrations.trl_rewards import trl_reward_funcs
from harmo_fast.rewards.config import RewardConfig


def _train(trainer_class, model_dir, out, funcs, weights, **overrides):
    trainer = trainer_class(
        model=model_dir,
        reward_funcs=funcs,
        args=_config(out, reward_weights=weights, **overrides),
        train_dataset=arithmetic_prompts(),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    return trainer


def _check_logged_rewards(trainer, weights):
    logs = [h for h in trainer.state.log_history if "rewards/harmo_hybrid/mean" in h]
    assert logs
    for h in logs:
        means = [h[f"rewards/harmo_{c}/mean"] for c in ("hybrid", "length", "format")]
        # no NaN: unscorable answers score 0 rather than None
        assert all(math.isfinite(m) for m in means)
        assert h["reward"] == pytest.approx(sum(w * m for w, m in zip(weights, means)), abs=1e-5)


def test_stock_trainer_with_num_generations(tiny_model_dir, tmp_path):
    cfg = RewardConfig(num_workers=1)
    funcs, weights = trl_reward_funcs(cfg, num_generations=4, use_pool=False)
    _check_logged_rewards(_train(GRPOTrainer, tiny_model_dir, str(tmp_path), funcs, weights, max_steps=2), weights)


def test_harmo_trainer_binds_the_group_size(tiny_model_dir, tmp_path):
    seen = []
    funcs, weights = trl_reward_funcs(RewardConfig(), use_pool=False)

    def spy(prompts, completions, **kwargs):
        seen.append(list(prompts))
        return [0.0] * len(prompts)

    trainer = _train(
        HarmoGRPOTrainer, tiny_model_dir, str(tmp_path), [*funcs, spy], [*weights, 0.0], max_steps=2, num_generations=2
    )
    _check_logged_rewards(trainer, weights)
    for prompts in seen:
        blocks = [prompts[i : i + 2] for i in range(0, len(prompts), 2)]
        assert all(len(set(b)) == 1 for b in blocks), prompts
