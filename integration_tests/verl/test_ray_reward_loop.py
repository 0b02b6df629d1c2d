"""The whole reward path of a verl run, on a local Ray cluster: verl's RewardLoopManager starts two
RewardLoopWorker actors (the "harmo" names registered in them only by VERL_USE_EXTERNAL_MODULES,
as the README says), splits one prompt group across them, assembles rm_scores and the extra info,
and verl's compute_advantage with the "harmo" estimator applies the length penalty to the group."""

import os

import pytest
import torch
from conftest import make_batch, trainer_config_for
from test_length_penalty import GROUP
from verl.trainer.ppo.ray_trainer import compute_advantage

from harmo_fast.integrations.verl_config import trainer_reward_config
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.types import RewardSample

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    env = {"VERL_USE_EXTERNAL_MODULES": "harmo_fast.integrations.verl"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield
    ray.shutdown()


def test_group_split_across_reward_workers(local_ray, tokenizer_dir, tokenizer):
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    config = trainer_config_for(tokenizer_dir, ["+reward.reward_kwargs.num_workers=1", "reward.num_workers=2"])
    manager = RewardLoopManager(config)
    assert len(manager.reward_loop_workers) == 2  # responses 0-1 on one worker, 2-3 on the other
    batch = make_batch(tokenizer, GROUP, ["4"] * 4, ["q"] * 4)
    out = manager.compute_rm_score(batch)
    assert out.meta_info["reward_extra_keys"] == ["acc", "hybrid", "format", "length"]
    assert out.non_tensor_batch["acc"].tolist() == [1.0, 1.0, 0.0, 0.0]
    lengths = out.non_tensor_batch["length"].tolist()

    batch.batch["token_level_rewards"] = out.batch["rm_scores"]
    batch = compute_advantage(batch, adv_estimator="harmo", config=config.algorithm)
    cfg = trainer_reward_config(config)
    samples = [RewardSample(r, "4", "math", 0, n) for r, n in zip(GROUP, lengths)]
    want = torch.tensor(HybridReward(cfg).score(samples).total)
    assert want[2] < want[3]  # the short wrong answer is penalised
    assert batch.batch["advantages"][:, 0].tolist() == pytest.approx((want - want.mean()).tolist(), abs=1e-6)
