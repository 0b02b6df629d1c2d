"""verl's reward-function signature: compute_score(data_source, solution_str, ground_truth,
extra_info, **reward_kwargs) -> {"score", "acc", "hybrid", "format"} (verl itself is not needed)."""

import pytest

from harmo_fast.integrations.verl_score import compute_score
from harmo_fast.rewards import compute_score as exported_compute_score
from harmo_fast.rewards.config import ModelRMConfig, RewardConfig

GOOD = "<think>2+2</think><answer>4</answer>"
WRONG_SHORT = "<think>.</think><answer>5</answer>"
BOXED = "so the answer is \\boxed{4}"


def test_exported_from_the_rewards_package():
    assert exported_compute_score is compute_score


def test_components_and_accuracy():
    assert compute_score("openai/gsm8k", GOOD, "4") == {"score": 1.5, "acc": 1.0, "hybrid": 1.0, "format": 0.5}
    # correct, other format: 1 - 0.5
    assert compute_score("openai/gsm8k", BOXED, "4") == {"score": 0.5, "acc": 1.0, "hybrid": 1.0, "format": -0.5}
    # wrong: acc 0 (not the total, which the format reward makes positive); no length penalty alone
    assert compute_score("openai/gsm8k", WRONG_SHORT, "4") == {"score": 0.5, "acc": 0.0, "hybrid": 0.0, "format": 0.5}


def test_gold_shapes_and_task_types():
    assert compute_score("openai/gsm8k", GOOD, ["3", "4"])["hybrid"] == 1.0
    assert compute_score("openai/gsm8k", GOOD, 4)["hybrid"] == 1.0  # numbers as gold
    # extra_info's task type wins over the data source
    mc = "<think>x</think><answer>blue</answer>"
    info = {"task_type": "multiple_choice", "choices": ["red", "blue"]}
    assert compute_score("openai/gsm8k", mc, "B", info)["hybrid"] == 1.0
    assert compute_score("cais/mmlu", "<think>x</think><answer>(C)</answer>", "C")["acc"] == 1.0
    # verl's own keys in extra_info and extra keyword arguments are ignored
    assert compute_score("openai/gsm8k", GOOD, "4", {"index": 7, "num_turns": 1}, some_verl_kwarg=True)["score"] == 1.5


def test_settings_as_a_config_or_a_mapping():
    cfg = RewardConfig(w_hybrid=2.0, w_format=0.0, model_rm=ModelRMConfig(kind="none"))
    assert compute_score("openai/gsm8k", GOOD, "4", cfg=cfg)["score"] == 2.0
    as_dict = {"w_hybrid": 2.0, "w_format": 0.0, "model_rm": {"kind": "none"}}
    assert compute_score("openai/gsm8k", GOOD, "4", cfg=as_dict)["score"] == 2.0
    assert compute_score("coco_captions", GOOD, "4", cfg=as_dict)["hybrid"] == 0.0  # open-ended, no model RM
    # a lower correctness threshold counts a partial model score as accurate
    half = {"model_rm": {"kind": "none"}, "length": {"correct_threshold": 0.0}}
    assert compute_score("coco_captions", GOOD, "4", cfg=half)["acc"] == 1.0
    with pytest.raises(ValueError, match=r"unknown setting 'cfg.w_fmt'"):
        compute_score("openai/gsm8k", GOOD, "4", cfg={"w_fmt": 0.0})
