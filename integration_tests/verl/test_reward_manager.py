"""The "harmo" reward-loop manager on real DataProto batches, through verl's RewardLoopWorker (the
per-response path verl's reward loop runs: compute_score_batch -> compute_score -> run_single)."""

import asyncio

import pytest
from conftest import make_batch, score_batch, trainer_config_for
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

from harmo_fast.integrations.verl_carrier import decode
from harmo_fast.integrations.verl_reward import HarmoRewardManager, SampleBatcher
from harmo_fast.integrations.verl_score import verl_sample
from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward

GOOD = "<think>2+2 is 4</think><answer>4</answer>"
WRONG = "<think>hmm</think><answer>5</answer>"
BOXED = "the answer is \\boxed{4}"


@pytest.fixture(scope="module")
def worker(tokenizer_dir):
    w = RewardLoopWorker(trainer_config_for(tokenizer_dir, ["+reward.reward_kwargs.num_workers=1"]))
    yield w
    w.reward_manager.close()


def score(worker, batch):
    return score_batch(worker, batch)


def test_the_worker_loads_the_harmo_manager(worker):
    assert get_reward_manager_cls("harmo") is HarmoRewardManager
    assert isinstance(worker.reward_manager, HarmoRewardManager)
    assert worker.reward_manager.cfg.num_workers == 1  # from reward.reward_kwargs


def test_scores_and_extra_info(worker, tokenizer):
    batch = make_batch(tokenizer, [GOOD, WRONG, BOXED], ["4", "4", "4"], ["a", "a", "a"])
    out = score(worker, batch)
    info = [o["reward_extra_info"] for o in out]
    assert [i["acc"] for i in info] == [1.0, 0.0, 1.0]
    assert [i["hybrid"] for i in info] == [1.0, 0.0, 1.0]
    assert [i["format"] for i in info] == [0.5, 0.5, -0.5]
    # length: the response's tokens (bytes here) plus EOS, as attention_mask counts them
    assert [i["length"] for i in info] == [len(GOOD) + 1, len(WRONG) + 1, len(BOXED) + 1]
    rm_scores = HarmoRewardManager.assemble_rm_scores(batch, [o["reward_score"] for o in out])
    scores, correct = decode(rm_scores)
    assert scores.tolist() == pytest.approx([1.5, 0.5, 0.5], abs=1e-6)
    assert correct.tolist() == [True, False, True]


def test_matches_hybrid_reward_on_other_task_types(worker, tokenizer):
    mc = "<think>x</think><answer>(B)</answer>"
    infos = [{"task_type": "multiple_choice", "choices": ["red", "blue"]}, {}]
    batch = make_batch(tokenizer, [mc, mc], ["B", "B"], ["u", "v"], data_source="cais/mmlu", extra_infos=infos)
    out = score(worker, batch)
    assert [o["reward_extra_info"]["acc"] for o in out] == [1.0, 1.0]
    expected = HybridReward(worker.reward_manager.cfg).score(
        [worker.reward_manager._sample(batch[i].non_tensor_batch, mc, 0) for i in range(2)]
    )
    assert [o["reward_extra_info"]["hybrid"] for o in out] == expected.components["hybrid"]


def test_heavy_answers_go_through_the_pool_in_one_batch(worker, tokenizer):
    pool = worker.reward_manager.pool
    before = pool.dispatched
    responses = ["<think>a</think><answer>\\frac{x^2-1}{x-1}</answer>", "<think>b</think><answer>x+2</answer>"]
    out = score(worker, make_batch(tokenizer, responses, ["x+1", "x+1"], ["g", "g"]))
    assert [o["reward_extra_info"]["acc"] for o in out] == [1.0, 0.0]
    assert pool.dispatched - before == 2  # sympy cases left the process, with the pool's timeout


def test_missing_ground_truth_is_a_clear_error(worker, tokenizer):
    batch = make_batch(tokenizer, [GOOD], ["4"], ["a"])
    batch.non_tensor_batch["reward_model"][0] = {"style": "rule"}
    with pytest.raises(KeyError, match=r"reward_model'\]\['ground_truth'\]"):
        score(worker, batch)


def test_unknown_setting_fails_at_startup(tokenizer_dir):
    with pytest.raises(ValueError, match=r"unknown setting 'reward.reward_kwargs.w_fmt'"):
        RewardLoopWorker(trainer_config_for(tokenizer_dir, ["+reward.reward_kwargs.w_fmt=0.0"]))


def test_concurrent_samples_are_scored_as_one_batch():
    calls = []
    hybrid = HybridReward(RewardConfig())

    def score_batch(samples):
        calls.append(len(samples))
        return hybrid.score(samples)

    batcher = SampleBatcher(score_batch)
    samples = [verl_sample("openai/gsm8k", text, "4", None, 10) for text in (GOOD, WRONG, BOXED) * 2]

    async def concurrently():
        return await asyncio.gather(*(batcher.score(s) for s in samples))

    assert asyncio.run(concurrently()) == [(1.0, 0.5), (0.0, 0.5), (1.0, -0.5)] * 2
    assert calls == [6]


def test_a_failing_batch_fails_each_of_its_samples():
    def broken(samples):
        raise RuntimeError("scorer down")

    batcher = SampleBatcher(broken)
    sample = verl_sample("openai/gsm8k", GOOD, "4", None, 10)

    async def concurrently():
        return await asyncio.gather(batcher.score(sample), batcher.score(sample), return_exceptions=True)

    assert [str(e) for e in asyncio.run(concurrently())] == ["scorer down", "scorer down"]
