"""harmo_fast.integrations.samples: the task type a dataset's name implies (shared by the TRL and
verl integrations)."""

import pytest

from harmo_fast.integrations.samples import task_type_from_data_source


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
