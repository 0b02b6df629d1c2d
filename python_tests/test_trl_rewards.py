"""HARMO's TRL reward functions, called the way GRPOTrainer calls them (keyword arguments prompts,
completions, completion_ids, trainer_state and the dataset columns), without TRL installed: groups
from blocks of num_generations (or a group_id column), unscorable answers scoring 0, and groups
split across two real torch.distributed (gloo) processes. Runs against the real trainer are in
integration_tests/trl."""

from __future__ import annotations

import inspect
import json
import logging
import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from harmo_fast.integrations.trl_rewards import trl_reward_func, trl_reward_funcs
from harmo_fast.rewards import trl_reward_funcs as exported_reward_funcs
from harmo_fast.rewards.config import LengthPenaltyConfig, RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.types import RewardSample

GOOD = "<think>2+2</think><answer>4</answer>"
WRONG_SHORT = "<think>.</think><answer>5</answer>"
BOXED = "so the answer is \\boxed{4}"
CFG = RewardConfig(length=LengthPenaltyConfig(p_max=1.0, tau=1.0))


def _chat(text, role="assistant"):
    return [{"role": role, "content": text}]


def _trl_call(func, prompts, completions, lengths, **columns):
    """The call GRPOTrainer makes."""
    ids = [[0] * n for n in lengths]
    return func(prompts=prompts, completions=completions, completion_ids=ids, trainer_state=object(), **columns)


def test_signature_name_and_export():
    f = trl_reward_func(CFG, num_generations=2, use_pool=False)
    params = inspect.signature(f).parameters
    assert list(params)[:2] == ["prompts", "completions"] and any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert f.__name__ == "harmo_total" and callable(f.bind_trainer)
    assert exported_reward_funcs is trl_reward_funcs
    with pytest.raises(ValueError, match="component"):
        trl_reward_func(CFG, component="accuracy")
    with pytest.raises(ValueError, match="num_generations must be a positive int"):
        trl_reward_func(CFG, num_generations=0)


def test_blocks_of_num_generations_match_the_router():
    prompts = ["What is 2+2?", "What is 2+2?", "Pick one", "Pick one"]
    completions = [GOOD, WRONG_SHORT, "<think>x</think><answer>(B)</answer>", "<answer>(A)</answer>"]
    answers, task_types = ["4", "4", "B", "B"], ["math", "math", "multiple_choice", "multiple_choice"]
    lengths = [40, 10, 5, 3]
    f = trl_reward_func(CFG, num_generations=2, use_pool=False)
    got = _trl_call(f, prompts, completions, lengths, answer=answers, task_type=task_types)
    samples = [
        RewardSample(c, a, t, g, n, prompt=p)
        for c, a, t, g, n, p in zip(completions, answers, task_types, [0, 0, 1, 1], lengths, prompts)
    ]
    assert got == pytest.approx(HybridReward(CFG).score(samples).total)
    # correct+format 1.5; wrong, shorter than L*=40: -(40-10)/40 length, +0.5 format; group 2: the
    # correct one is the shortest (L*=5), the wrong one shorter still and without the format
    assert got[:2] == pytest.approx([1.5, 0.5 - 0.75])


def test_same_prompt_text_does_not_join_groups():
    f = trl_reward_func(CFG, component="length", num_generations=2, use_pool=False)
    # four answers to one prompt, two groups: the wrong short answer of group 1 is compared with
    # group 1's correct answer only
    out = _trl_call(f, ["p"] * 4, [GOOD, WRONG_SHORT, WRONG_SHORT, WRONG_SHORT], [40, 10, 10, 30], answer=["4"] * 4)
    assert out == pytest.approx([0.0, -0.75, 0.0, 0.0])
    # an explicit group_id column wins over the blocks
    joined = _trl_call(f, ["p"] * 4, [GOOD, WRONG_SHORT] * 2, [40, 10, 40, 10], answer=["4"] * 4, group_id=[7] * 4)
    assert joined == pytest.approx([0.0, -0.75, 0.0, -0.75])
    # without completion_ids the word count stands in: 1 word vs 5 words
    words = f(["p", "p"], ["<answer>4</answer> one two three four", "<answer>5</answer>"], answer=["4", "4"])
    assert words == pytest.approx([0.0, -0.8])


def test_conversational_completions_equal_strings():
    f = trl_reward_func(CFG, num_generations=2, use_pool=False)
    strings = _trl_call(f, ["What is 2+2?"] * 2, [GOOD, WRONG_SHORT], [30, 10], answer=["4", "4"])
    chats = _trl_call(
        f, [_chat("What is 2+2?", "user")] * 2, [_chat(GOOD), _chat(WRONG_SHORT)], [30, 10], answer=["4"] * 2
    )
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in (GOOD, WRONG_SHORT)]
    typed = _trl_call(f, [_chat("What is 2+2?", "user")] * 2, parts, [30, 10], answer=["4", "4"])
    assert strings == chats == typed
    assert strings[1] < 0.5  # the length penalty saw one group


def test_unscorable_answers_score_zero_and_log_the_reason_once(caplog):
    f = trl_reward_func(CFG, component="hybrid", num_generations=2, use_pool=False)
    with caplog.at_level(logging.WARNING, logger="harmo_fast.integrations.trl_rewards"):
        out = _trl_call(
            f,
            ["p"] * 4,
            [GOOD, GOOD, GOOD, "<answer>no</answer>"],
            [3] * 4,
            answer=["4", "maybe", "maybe", "perhaps"],
            task_type=["math", "yes_no", "yes_no", "yes_no"],
        )
        again = _trl_call(f, ["q"] * 2, [GOOD, GOOD], [3, 3], answer=["maybe", "4"], task_type=["yes_no", "math"])
    assert out == [1.0, 0.0, 0.0, 0.0] and again == [0.0, 1.0]
    assert all(isinstance(x, float) for x in out)  # never None: TRL would drop the row from its mean
    logged = [r.getMessage() for r in caplog.records if "could not be scored" in r.getMessage()]
    assert len(logged) == 1 and "parse_fail" in logged[0]
    # the total counts the unscorable answer's accuracy as 0 as well
    total = trl_reward_func(CFG, num_generations=2, use_pool=False)
    assert _trl_call(total, ["p"] * 2, [GOOD, GOOD], [3, 3], answer=["maybe", "4"], task_type=["yes_no", "math"]) == [
        0.5,
        1.5,
    ]


def test_group_layout_errors():
    f = trl_reward_func(CFG, use_pool=False)
    with pytest.raises(ValueError, match=r"num_generations= .*group_id"):
        f(["p", "p"], [GOOD, GOOD], answer=["4", "4"])
    assert f(["p", "p"], [GOOD, GOOD], answer=["4", "4"], group_id=[0, 0]) == [1.5, 1.5]
    g = trl_reward_func(CFG, num_generations=4, use_pool=False)
    with pytest.raises(ValueError, match="3 completions do not form whole groups of num_generations=4"):
        g(["p"] * 3, [GOOD] * 3, answer=["4"] * 3)


def test_bad_columns():
    f = trl_reward_func(CFG, num_generations=1, use_pool=False)
    with pytest.raises(KeyError, match="'answer' column"):
        f(["p"], [GOOD], solution=["4"])
    assert trl_reward_func(CFG, num_generations=1, answer_key="solution", use_pool=False)(
        ["p"], [GOOD], solution=["4"]
    ) == [1.5]
    with pytest.raises(ValueError, match="'task_type' has 1 entries for 2"):
        f(["p", "p"], [GOOD, GOOD], answer=["4", "4"], task_type=["math"])


def test_reward_funcs_share_one_scoring(monkeypatch):
    calls = []
    original = HybridReward.score
    monkeypatch.setattr(HybridReward, "score", lambda self, s: calls.append(len(s)) or original(self, s))
    cfg = RewardConfig(w_hybrid=2.0, w_length=0.5, w_format=0.25)
    funcs, weights = trl_reward_funcs(cfg, num_generations=2, use_pool=False)
    assert [f.__name__ for f in funcs] == ["harmo_hybrid", "harmo_length", "harmo_format"]
    assert weights == [2.0, 0.5, 0.25]
    batch = dict(prompts=["q", "q"], completions=[GOOD, "4"], answer=["4", "4"], completion_ids=[[0] * 9, [0] * 3])
    hyb, length, fmt = (f(**batch) for f in funcs)
    assert calls == [2]
    assert hyb == [1.0, 1.0] and fmt == [0.5, -0.5] and length == [0.0, 0.0]
    funcs[0](**{**batch, "completions": [GOOD, "5"]})  # a new batch is scored again
    assert calls == [2, 2]


def test_with_the_worker_pool():
    f = trl_reward_func(RewardConfig(num_workers=1), component="hybrid", num_generations=2)
    try:
        assert f(["p", "p"], ["<answer>\\frac{x^2-1}{x-1}</answer>", "<answer>3</answer>"], answer=["x+1", "3"]) == [
            1.0,
            1.0,
        ]
    finally:
        f.close()


# --- a prompt's generations split across two processes

# Six completions, num_generations=2, three per process: group 1 is positions 2 (process 0: wrong
# and shorter) and 3 (process 1: correct). Its length penalty needs both processes.
SPLIT_COMPLETIONS = [GOOD, GOOD, WRONG_SHORT, GOOD, GOOD, WRONG_SHORT]
SPLIT_LENGTHS = [20, 30, 4, 30, 10, 4]


def _split_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        funcs, _ = trl_reward_funcs(CFG, num_generations=2, use_pool=False)
        n = len(SPLIT_COMPLETIONS) // world
        mine = slice(rank * n, (rank + 1) * n)
        lengths = SPLIT_LENGTHS[mine]
        results = [_trl_call(f, ["p"] * n, SPLIT_COMPLETIONS[mine], lengths, answer=["4"] * n) for f in funcs]
        with open(f"{out_dir}/rank{rank}.json", "w") as fh:
            json.dump(results, fh)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_groups_split_across_processes_get_the_whole_group_penalty(tmp_path):
    mp.spawn(_split_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    parts = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    split = [parts[0][c] + parts[1][c] for c in range(3)]  # per component: both processes' rows
    funcs, _ = trl_reward_funcs(CFG, num_generations=2, use_pool=False)
    n = len(SPLIT_COMPLETIONS)
    whole = [_trl_call(f, ["p"] * n, SPLIT_COMPLETIONS, SPLIT_LENGTHS, answer=["4"] * n) for f in funcs]
    assert split == whole
    # group 1's wrong answer (process 0) is penalised against the correct one on process 1; alone,
    # process 0 would have seen no correct answer in that group and given no penalty
    assert split[1][2] < 0
    alone = _trl_call(funcs[1], ["p"] * 2, SPLIT_COMPLETIONS[2:4], SPLIT_LENGTHS[2:4], answer=["4"] * 2)
    assert alone[0] == split[1][2]
    local = _trl_call(funcs[1], ["p"], SPLIT_COMPLETIONS[2:3], SPLIT_LENGTHS[2:3], answer=["4"], group_id=[1])
    assert local == [0.0]
