"""compute_score as verl's custom reward function: loaded by verl from the README's pkg:// path,
its reward_kwargs (cfg) from the YAML, run by verl's naive manager in RewardLoopWorker."""

import pytest
from conftest import make_batch, score_batch, trainer_config_for
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
from verl.trainer.ppo.reward import get_custom_reward_fn

from harmo_fast.integrations.verl_score import compute_score

GOOD = "<think>2+2 is 4</think><answer>4</answer>"
WRONG = "<think>hmm</think><answer>5</answer>"
FUNCTION = [
    "reward.reward_manager.name=naive",
    "algorithm.adv_estimator=grpo",
    "reward.custom_reward_function.path=pkg://harmo_fast.integrations.verl_score",
    "reward.custom_reward_function.name=compute_score",
]


def test_loaded_from_the_pkg_path(tokenizer_dir):
    config = trainer_config_for(tokenizer_dir, FUNCTION)
    fn = get_custom_reward_fn(config)
    assert fn.func.__name__ == "_call_with_kwargs" and fn.args[0] is compute_score


def test_scores_through_verls_naive_manager(tokenizer_dir, tokenizer):
    config = trainer_config_for(
        tokenizer_dir, [*FUNCTION, "+reward.custom_reward_function.reward_kwargs.cfg.w_format=0.0"]
    )
    worker = RewardLoopWorker(config)
    batch = make_batch(tokenizer, [GOOD, WRONG], ["4", "4"], ["a", "a"])
    out = score_batch(worker, batch)
    assert [o["reward_score"] for o in out] == [1.0, 0.0]  # w_format=0 from the YAML
    info = [o["reward_extra_info"] for o in out]
    assert [i["acc"] for i in info] == [1.0, 0.0] and [i["format"] for i in info] == [0.5, 0.5]


def test_bad_reward_kwargs_name_the_key(tokenizer_dir, tokenizer):
    config = trainer_config_for(
        tokenizer_dir, [*FUNCTION, "+reward.custom_reward_function.reward_kwargs.cfg.w_fmt=0.0"]
    )
    worker = RewardLoopWorker(config)
    with pytest.raises(ValueError, match=r"unknown setting 'cfg.w_fmt'"):
        score_batch(worker, make_batch(tokenizer, [GOOD], ["4"], ["a"]))
