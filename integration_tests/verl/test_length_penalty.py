"""HARMO's group length penalty under verl, end to end through verl's own code: responses scored
one at a time by RewardLoopWorker with the "harmo" manager, rewards assembled into rm_scores as
verl's RewardLoopManager does, advantages from verl's compute_advantage with
adv_estimator="harmo" and the trainer config's algorithm section."""

import numpy as np
import pytest
import torch
from conftest import make_batch, score_batch, trainer_config_for
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
from verl.trainer.ppo.ray_trainer import compute_advantage

from harmo_fast.integrations.verl_config import trainer_reward_config
from harmo_fast.integrations.verl_reward import HarmoRewardManager
from harmo_fast.rewards.config import LengthPenaltyConfig, RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.types import RewardSample

# One prompt, four responses (token lengths are byte counts + EOS here):
LONG_RIGHT = "<think>" + "two plus two makes four. " * 3 + "</think><answer>4</answer>"
SHORT_RIGHT = "<think>2+2=4</think><answer>4</answer>"
SHORT_WRONG = "<think>?</think><answer>5</answer>"  # shorter than the shortest correct: penalised
LONG_WRONG = "<think>" + "maybe it is five " * 4 + "</think><answer>5</answer>"  # longer: not penalised
GROUP = [LONG_RIGHT, SHORT_RIGHT, SHORT_WRONG, LONG_WRONG]


def run(tokenizer_dir, tokenizer, responses, uids, extra=()):
    config = trainer_config_for(tokenizer_dir, ["+reward.reward_kwargs.num_workers=1", *extra])
    worker = RewardLoopWorker(config)
    try:
        batch = make_batch(tokenizer, responses, ["4"] * len(responses), uids)
        outputs = score_batch(worker, batch)
    finally:
        worker.reward_manager.close()
    batch.batch["token_level_scores"] = HarmoRewardManager.assemble_rm_scores(
        batch, [o["reward_score"] for o in outputs]
    )
    batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]  # use_kl_in_reward=False
    batch = compute_advantage(
        batch,
        adv_estimator=config.algorithm.adv_estimator,
        num_repeat=config.actor_rollout_ref.rollout.n,
        norm_adv_by_std_in_grpo=config.algorithm.norm_adv_by_std_in_grpo,
        config=config.algorithm,
    )
    return batch, outputs, config


def first_token(t: torch.Tensor) -> list[float]:
    return t[:, 0].tolist()


def test_shortest_correct_gets_the_highest_advantage(tokenizer_dir, tokenizer):
    batch, outputs, _ = run(tokenizer_dir, tokenizer, GROUP, ["q"] * 4)
    lengths = [o["reward_extra_info"]["length"] for o in outputs]
    assert lengths[2] < lengths[1] < lengths[3] < lengths[0]
    adv = first_token(batch.batch["advantages"])
    assert adv[1] == max(adv) and adv[1] > adv[3] > adv[2]
    # the shorter wrong answer is worse off than the longer wrong one: only it was penalised
    assert adv[2] < adv[3]
    # every token of a response carries its advantage; padding carries 0
    mask = batch.batch["response_mask"].bool()
    assert torch.equal(batch.batch["advantages"] != 0, mask & (batch.batch["advantages"][:, :1] != 0))


def test_rewards_equal_harmo_scoring_the_whole_group(tokenizer_dir, tokenizer):
    batch, outputs, config = run(tokenizer_dir, tokenizer, GROUP, ["q"] * 4)
    cfg = trainer_reward_config(config)
    samples = [RewardSample(r, "4", "math", 0, o["reward_extra_info"]["length"]) for r, o in zip(GROUP, outputs)]
    want = torch.tensor(HybridReward(cfg).score(samples).total)
    assert want[2] < 1.0  # the penalty is in play: 0.5 format - p_max * min(1, d / tau)
    adv = torch.tensor(first_token(batch.batch["advantages"]))
    assert adv.tolist() == pytest.approx((want - want.mean()).tolist(), abs=1e-6)


def test_groups_follow_the_uids_in_any_order(tokenizer_dir, tokenizer):
    # two interleaved groups; group "b" has no correct answer, so no anchor and no penalty
    responses = [SHORT_WRONG, SHORT_WRONG, SHORT_RIGHT, LONG_WRONG]
    batch, outputs, _ = run(tokenizer_dir, tokenizer, responses, ["a", "b", "a", "b"])
    adv = first_token(batch.batch["advantages"])
    assert adv[1] == pytest.approx(0.0, abs=1e-6) and adv[3] == pytest.approx(0.0, abs=1e-6)  # equal rewards
    # group "a": correct 1.5 vs wrong 0.5 - p_max * (d / tau), d = (L* - L) / L*, p_max = tau = 0.5
    shortest, wrong = (outputs[i]["reward_extra_info"]["length"] for i in (2, 0))
    gap = 1.0 + (shortest - wrong) / shortest
    assert adv[2] == pytest.approx(gap / 2, abs=1e-6) and adv[0] == pytest.approx(-gap / 2, abs=1e-6)


def test_settings_reach_the_estimator(tokenizer_dir, tokenizer):
    off, _, _ = run(tokenizer_dir, tokenizer, GROUP, ["q"] * 4, ["+reward.reward_kwargs.length.enabled=false"])
    adv = first_token(off.batch["advantages"])
    assert adv[2] == pytest.approx(adv[3], abs=1e-6)  # no penalty: both wrong answers alike
    heavy, _, _ = run(tokenizer_dir, tokenizer, GROUP, ["q"] * 4, ["+reward.reward_kwargs.w_length=3.0"])
    on, _, _ = run(tokenizer_dir, tokenizer, GROUP, ["q"] * 4)
    gap = lambda b: first_token(b.batch["advantages"])[3] - first_token(b.batch["advantages"])[2]  # noqa: E731
    assert gap(heavy) == pytest.approx(3 * gap(on), rel=1e-5)


def test_without_the_length_penalty_it_is_verls_grpo_without_std(tokenizer_dir, tokenizer):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    responses = [*GROUP, SHORT_RIGHT, LONG_WRONG]
    uids = np.array(["q", "q", "q", "q", "r", "r"], dtype=object)
    off, _, _ = run(tokenizer_dir, tokenizer, responses, list(uids), ["+reward.reward_kwargs.length.enabled=false"])
    ours = off.batch["advantages"]
    verls, _ = compute_grpo_outcome_advantage(
        off.batch["token_level_rewards"], off.batch["response_mask"], uids, norm_adv_by_std_in_grpo=False
    )
    assert torch.allclose(ours, verls, atol=1e-6)
    assert RewardConfig().length == LengthPenaltyConfig()  # the defaults the other tests rely on
