"""verl's compute_score and the data-source mapping (the TRL reward functions are tested in
test_trl_rewards.py)."""

import pytest

from harmo_fast.integrations.samples import task_type_from_data_source
from harmo_fast.rewards import compute_score as exported_compute_score
from harmo_fast.rewards.adapters import compute_score
from harmo_fast.rewards.config import ModelRMConfig, RewardConfig

GOOD = "<think>2+2</think><answer>4</answer>"
WRONG_SHORT = "<think>.</think><answer>5</answer>"
BOXED = "so the answer is \\boxed{4}"


@pytest.mark.parametrize(
    ("source", "task_type"),
    [
        ("openai/gsm8k", "math"),
        ("lighteval/MATH", "math"),
        ("hiyouga/geometry3k", "math"),
        ("cais/mmlu", "multiple_choice"),
        ("allenai/ai2_arc", "multiple_choice"),
        ("lmms-lab/DocVQA", "short_text"),
        ("CountBenchQA", "counting"),
        ("lmms-lab/POPE", "yes_no"),
        ("coco_captions", "open_ended"),
        ("lmms-lab/ChartQA", "short_text"),
        ("openai/some_set", "math"),  # no match: the default
        ("archive_of_research", "math"),  # short names match whole words only
    ],
)
def test_data_source_mapping(source, task_type):
    assert task_type_from_data_source(source) == task_type


def test_verl_compute_score():
    assert exported_compute_score is compute_score
    assert compute_score("openai/gsm8k", GOOD, "4") == 1.5  # 1 (correct) + 0.5 (format)
    assert compute_score("openai/gsm8k", BOXED, "4") == 0.5  # correct, other format: 1 - 0.5
    assert compute_score("openai/gsm8k", WRONG_SHORT, "4") == 0.5  # wrong 0, format +0.5, no group: no length penalty
    assert compute_score("openai/gsm8k", GOOD, ["3", "4"], component="hybrid") == 1.0
    assert compute_score("openai/gsm8k", GOOD, 4, component="hybrid") == 1.0  # numbers as gold
    # extra_info's task type wins over the data source
    mc = "<think>x</think><answer>blue</answer>"
    assert (
        compute_score(
            "openai/gsm8k", mc, "B", {"task_type": "multiple_choice", "choices": ["red", "blue"]}, component="hybrid"
        )
        == 1.0
    )
    assert compute_score("cais/mmlu", "<think>x</think><answer>(C)</answer>", "C", component="hybrid") == 1.0
    cfg = RewardConfig(w_hybrid=2.0, w_format=0.0, model_rm=ModelRMConfig(kind="none"))
    assert compute_score("openai/gsm8k", GOOD, "4", cfg=cfg) == 2.0
    assert compute_score("coco_captions", GOOD, "4", cfg=cfg, component="hybrid") == 0.0  # open-ended, no model RM
    assert compute_score("openai/gsm8k", GOOD, "4", {"index": 7}, some_verl_kwarg=True) == 1.5
    with pytest.raises(ValueError, match="component"):
        compute_score("openai/gsm8k", GOOD, "4", component="length")
