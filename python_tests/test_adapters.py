"""The TRL reward-function adapter (called the way GRPOTrainer calls reward functions: keyword
arguments prompts, completions, completion_ids, trainer_state and the dataset columns) and the
data-source mapping the adapters share."""

import inspect

import pytest

from harmo_fast.integrations.samples import task_type_from_data_source
from harmo_fast.rewards.adapters import trl_reward_func, trl_reward_funcs
from harmo_fast.rewards.config import LengthPenaltyConfig, RewardConfig
from harmo_fast.rewards.hybrid import HybridReward

GOOD = "<think>2+2</think><answer>4</answer>"
WRONG_SHORT = "<think>.</think><answer>5</answer>"
BOXED = "so the answer is \\boxed{4}"
CFG = RewardConfig(length=LengthPenaltyConfig(p_max=1.0, tau=1.0))


def _chat(text, role="assistant"):
    return [{"role": role, "content": text}]


def _trl_call(func, prompts, completions, **columns):
    """The call GRPOTrainer makes."""
    ids = [
        [0] * n
        for n in columns.pop("_lengths", [len(c if isinstance(c, str) else c[0]["content"]) for c in completions])
    ]
    return func(prompts=prompts, completions=completions, completion_ids=ids, trainer_state=object(), **columns)


def test_trl_signature_and_name():
    f = trl_reward_func(CFG, use_pool=False)
    params = inspect.signature(f).parameters
    assert list(params)[:2] == ["prompts", "completions"] and any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert f.__name__ == "harmo_total"
    with pytest.raises(ValueError, match="component"):
        trl_reward_func(CFG, component="accuracy")


def test_trl_string_completions_match_the_router():
    prompts = ["What is 2+2?", "What is 2+2?", "What is 2+2?", "Pick one"]
    completions = [GOOD, WRONG_SHORT, BOXED, "<think>x</think><answer>(B)</answer>"]
    columns = dict(
        answer=["4", "4", "4", "B"], task_type=["math", "math", "math", "multiple_choice"], _lengths=[40, 10, 20, 5]
    )
    got = _trl_call(trl_reward_func(CFG, use_pool=False), prompts, completions, **dict(columns))
    # the same batch through the router, with groups from identical prompts
    from harmo_fast.rewards.types import RewardSample

    samples = [
        RewardSample(c, a, t, g, n, prompt=p)
        for c, a, t, g, n, p in zip(
            completions, columns["answer"], columns["task_type"], [0, 0, 0, 1], [40, 10, 20, 5], prompts
        )
    ]
    want = HybridReward(CFG).score(samples)
    assert got == pytest.approx(want.total)
    # correct+format 1.5; wrong, shorter than L*=20: -(20-10)/20 length, +0.5 format
    assert got == pytest.approx([1.5, 0.0 - 0.5 + 0.5, 1.0 - 0.5, 1.5])


def test_trl_conversational_completions_equal_strings():
    prompts = [_chat("What is 2+2?", "user")] * 2
    strings = _trl_call(
        trl_reward_func(CFG, use_pool=False),
        ["What is 2+2?"] * 2,
        [GOOD, WRONG_SHORT],
        answer=["4", "4"],
        _lengths=[30, 10],
    )
    chats = _trl_call(
        trl_reward_func(CFG, use_pool=False),
        prompts,
        [_chat(GOOD), _chat(WRONG_SHORT)],
        answer=["4", "4"],
        _lengths=[30, 10],
    )
    parts = [
        [{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}],
        [{"role": "assistant", "content": [{"type": "text", "text": WRONG_SHORT}]}],
    ]
    typed = _trl_call(trl_reward_func(CFG, use_pool=False), prompts, parts, answer=["4", "4"], _lengths=[30, 10])
    assert strings == chats == typed
    assert strings[1] < 0.5  # the length penalty saw one group


def test_trl_group_ids_and_lengths():
    f = trl_reward_func(CFG, component="length", use_pool=False)
    # different prompts: no shared anchor, no penalty; an explicit group_id column joins them
    apart = f(["p1", "p2"], [GOOD, WRONG_SHORT], answer=["4", "4"], completion_ids=[[0] * 40, [0] * 10])
    joined = f(
        ["p1", "p2"], [GOOD, WRONG_SHORT], answer=["4", "4"], completion_ids=[[0] * 40, [0] * 10], group_id=[3, 3]
    )
    assert apart == [0.0, 0.0] and joined == pytest.approx([0.0, -0.75])
    # without completion_ids the word count stands in: 1 word vs 5 words
    words = f(["p", "p"], ["<answer>4</answer> one two three four", "<answer>5</answer>"], answer=["4", "4"])
    assert words == pytest.approx([0.0, -0.8])


def test_trl_hybrid_component_is_none_when_nobody_could_judge():
    f = trl_reward_func(CFG, component="hybrid", use_pool=False)
    out = f(
        ["p", "p", "p"],
        [GOOD, GOOD, GOOD],
        answer=["4", "maybe", "maybe"],
        task_type=["math", "yes_no", "yes_no"],
        reference=[None, None, "4"],
        completion_ids=[[0]] * 3,
    )
    assert out[0] == 1.0 and out[1] is None
    assert out[2] is not None  # a reference lets the model RM judge it


def test_trl_bad_columns():
    f = trl_reward_func(CFG, use_pool=False)
    with pytest.raises(KeyError, match="'answer' column"):
        f(["p"], [GOOD], solution=["4"])
    assert trl_reward_func(CFG, answer_key="solution", use_pool=False)(["p"], [GOOD], solution=["4"]) == [1.5]
    with pytest.raises(ValueError, match="'task_type' has 1 entries for 2"):
        f(["p", "p"], [GOOD, GOOD], answer=["4", "4"], task_type=["math"])


def test_trl_reward_funcs_share_one_scoring(monkeypatch):
    calls = []
    original = HybridReward.score
    monkeypatch.setattr(HybridReward, "score", lambda self, s: calls.append(len(s)) or original(self, s))
    cfg = RewardConfig(w_hybrid=2.0, w_length=0.5, w_format=0.25)
    funcs, weights = trl_reward_funcs(cfg, use_pool=False)
    assert [f.__name__ for f in funcs] == ["harmo_hybrid", "harmo_length", "harmo_format"] and weights == [
        2.0,
        0.5,
        0.25,
    ]
    batch = dict(prompts=["q", "q"], completions=[GOOD, "4"], answer=["4", "4"], completion_ids=[[0] * 9, [0] * 3])
    hyb, length, fmt = (f(**batch) for f in funcs)
    assert calls == [2]
    assert hyb == [1.0, 1.0] and fmt == [0.5, -0.5] and length == [0.0, 0.0]
    funcs[0](**{**batch, "completions": [GOOD, "5"]})  # a new batch is scored again
    assert calls == [2, 2]


def test_trl_with_the_worker_pool():
    f = trl_reward_func(RewardConfig(num_workers=1), component="hybrid")
    try:
        assert f(["p", "p"], ["<answer>\\frac{x^2-1}{x-1}</answer>", "<answer>3</answer>"], answer=["x+1", "3"]) == [
            1.0,
            1.0,
        ]
    finally:
        f.close()


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
