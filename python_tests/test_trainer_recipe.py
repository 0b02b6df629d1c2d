"""The paper recipe (harmo_fast/recipes/harmo_qwen2_5_vl_3b.yaml) builds a trainer and steps, with a tiny
model in place of Qwen2.5-VL-3B (no download)."""

from __future__ import annotations

import argparse

import torch
from trainer_fakes import TINY, LetterRewards

from harmo_fast.cli import train as train_cli
from harmo_fast.data.jsonl import load_jsonl
from harmo_fast.data.synth import write_synth
from harmo_fast.recipes import recipe_path
from harmo_fast.rewards.pipeline import RewardPipeline
from harmo_fast.trainer.config import load_config
from harmo_fast.trainer.rollout import HFRolloutEngine, reward_samples
from harmo_fast.trainer.run import build_state
from harmo_fast.trainer.step import grpo_step, needs_old_logprobs

RECIPE = recipe_path("harmo_qwen2_5_vl_3b")
torch.set_num_threads(1)


def test_paper_recipe_builds_and_steps_with_a_tiny_vlm(tmp_path):
    write_synth(tmp_path, 4, 0, seed=3)
    cfg = load_config(RECIPE, [
        "model.name=tiny-vlm", f"model.builtin_overrides={TINY}", "trainer.device=cpu",
        "model.attn_implementation=null",
        "rewards.num_workers=1", "rewards.model_rm.device=cpu",
        # keep the recipe's G = 8 but one prompt and short completions, so the step is fast
        "algorithm.prompts_per_step=1", "rollout.max_new_tokens=6", "trainer.micro_batch_size=4",
    ])  # fmt: skip
    # LetterRewards gives every group a reward spread (a random tiny policy is never right), so the step must update
    st = build_state(cfg, rewards=LetterRewards())
    try:
        assert isinstance(st.engine, HFRolloutEngine) and st.ref_model is None  # beta = 0: no reference
        assert st.policy.is_vlm and not needs_old_logprobs(cfg)
        assert st.optimizer.param_groups[0]["initial_lr"] == 1e-6
        samples = load_jsonl(tmp_path / "train.jsonl").samples[:1]
        before = [p.detach().clone() for p in st.policy.model.parameters()]
        out = grpo_step(st, samples)
        assert out.batch.size == 8 and out.advantages.shape == (8,)
        assert torch.allclose(out.advantages.view(1, 8).sum(1), torch.zeros(1), atol=1e-5)  # mean-only, per group
        assert (out.advantages != 0).all() and out.stats["trained_frac"] == 1.0
        assert any(not torch.equal(b, p) for b, p in zip(before, st.policy.model.parameters()))
    finally:
        st.rewards.close()
    pipeline = RewardPipeline(cfg.rewards)  # the recipe's own rewards score the same batch
    try:
        result = pipeline.submit(reward_samples(out.batch)).result()
    finally:
        pipeline.close()
    assert len(result.total) == 8 and set(result.components) == {"hybrid", "length", "format"}


def test_train_cli_reports_config_errors(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    assert train_cli.run(parser.parse_args(["train", str(RECIPE), "trainer.lrr=1"])) == 2
    assert "valid keys at 'trainer'" in capsys.readouterr().out
    assert train_cli.run(parser.parse_args(["train", "algorithm.group_size=eight"])) == 2
    assert "algorithm.group_size" in capsys.readouterr().out
