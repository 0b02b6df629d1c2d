"""Multi-process training (trainer.parallel ddp / fsdp) on gloo with 2 spawned ranks, against one
process with the same global batch and seed: the same rollouts, losses and weights after 3
optimizer steps; resuming with another world size; a rank that dies stops the other with a clear
error, and the run resumes from its last checkpoint."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from dist_launch import launch
from safetensors.torch import load_file
from trainer_fakes import LetterRewards, tiny_config

from harmo_fast.data.jsonl import load_jsonl
from harmo_fast.data.synth import write_synth
from harmo_fast.rewards.types import Verdict
from harmo_fast.trainer.checkpoint import checkpoint_dirs
from harmo_fast.trainer.distributed import Dist
from harmo_fast.trainer.evaluate import evaluate, merge_reports
from harmo_fast.trainer.metrics import read_metrics
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import HFRolloutEngine
from harmo_fast.trainer.run import open_run, train
from harmo_fast.trainer.tiny_policy import build_tiny_lm

torch.set_num_threads(1)

# 4 prompts x G=4 per step: 2 whole groups per rank; a checkpoint after every step.
RUN = ("algorithm.prompts_per_step=4", "checkpoint.every=1", "checkpoint.keep_last=3")
TOL = {"ddp": 1e-5, "fsdp": 1e-4}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synth(d, 16, 6, seed=0)
    return d


@pytest.fixture(scope="module")
def single(tmp_path_factory, data_dir):
    """The one-process reference run."""
    out = tmp_path_factory.mktemp("single")
    train(tiny_config(data_dir, *RUN), out, rewards=LetterRewards())
    return out


def _weights(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / f"step-{step:06d}" / "weights.safetensors"))


def _assert_weights_close(a, b, tol):
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= tol, f"largest weight difference {worst:.3g} > {tol}"


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_match_one_process(tmp_path, data_dir, single, mode):
    out = tmp_path / mode
    assert launch(2, data_dir, out, *RUN, f"trainer.parallel={mode}") == [0, 0]
    one, two = read_metrics(single / "metrics.jsonl"), read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in two] == [1, 2, 3]
    for a, b in zip(one, two):
        # the same rollouts: rewards, lengths and group statistics of the global batch
        for k in ("reward/total_mean", "reward/total_std", "length/mean", "groups/zero_spread_frac", "trained_frac"):
            assert a[k] == b[k], k
        assert a["groups/zero_spread_frac"] < 1 and a["grad_norm"] > 1e-3  # a real gradient is compared
        assert b["loss"] == pytest.approx(a["loss"], abs=TOL[mode])
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=TOL[mode])
        assert b["entropy"] == pytest.approx(a["entropy"], rel=TOL[mode])
    _assert_weights_close(_weights(single, 3), _weights(out, 3), TOL[mode])
    fresh, _ = build_tiny_lm(seed=0, **tiny_config(data_dir).model.builtin_overrides)
    trained = _weights(out, 3)
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items() if k in trained)

    # Resume the 2-rank run's step-2 checkpoint with one rank: the shards are gathered (not bit-exact).
    resumed = tmp_path / f"{mode}-resumed"
    shutil.copytree(out, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000003")
    result = train(
        tiny_config(data_dir, *RUN, f"trainer.parallel={mode}"), resumed, resume=True, rewards=LetterRewards()
    )
    assert result.steps_done == 3
    assert [r["step"] for r in read_metrics(resumed / "metrics.jsonl")] == [1, 2, 3]
    _assert_weights_close(_weights(out, 3), _weights(resumed, 3), TOL["fsdp"])


def test_a_dead_rank_stops_the_other_and_the_run_resumes(tmp_path, data_dir, single):
    out = tmp_path / "dead"
    t0 = time.perf_counter()
    codes = launch(2, data_dir, out, *RUN, "trainer.parallel=ddp", "trainer.dist_timeout=30", die_at=2, timeout=150)
    assert codes[1] == 3  # the rank that died
    assert codes[0] not in (0, None), "the surviving rank must stop by itself with an error"
    assert time.perf_counter() - t0 < 150
    err = (out / "rank0.err").read_text()
    assert "DistributedError" in err and "another rank died" in err
    assert [p.name for p in checkpoint_dirs(out)] == ["step-000001"]

    result = train(tiny_config(data_dir, *RUN, "trainer.parallel=ddp"), out, resume=True, rewards=LetterRewards())
    assert result.steps_done == 3
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]
    _assert_weights_close(_weights(single, 3), _weights(out, 3), TOL["ddp"])


def test_parallel_none_under_a_multi_process_launch_is_an_error(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"trainer\.parallel=none"):
        train(tiny_config(data_dir), tmp_path, rewards=LetterRewards())


def test_prompts_must_split_into_whole_groups_per_rank(tmp_path, data_dir):
    cfg = tiny_config(data_dir, "algorithm.prompts_per_step=3", "trainer.parallel=ddp")
    with pytest.raises(ValueError, match="does not split into whole groups over 2 ranks"):
        open_run(cfg, tmp_path, LetterRewards(), Dist("ddp", rank=0, world=2))


@pytest.mark.parametrize("threads", [0, -2])
def test_thread_count_below_one_is_an_error(tmp_path, data_dir, threads):
    cfg = tiny_config(data_dir, f"trainer.num_threads={threads}")
    with pytest.raises(ValueError, match=rf"trainer\.num_threads must be >= 1 or null, got {threads}"):
        open_run(cfg, tmp_path, LetterRewards())
    assert not (tmp_path / "config.yaml").exists()  # refused before the run directory is written


class PromptParityRewards(LetterRewards):
    """Correct when the prompt has an even length: both outcomes in a small evaluation."""

    def score(self, samples):
        result = super().score(samples)
        result.verdicts = [Verdict(score=1.0, correct=len(s.prompt) % 2 == 0, reason="parity") for s in samples]
        return result


def test_evaluation_shards_merge_into_the_whole_evaluation(data_dir):
    model, tok = build_tiny_lm(seed=0, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    engine = HFRolloutEngine(model, PromptEncoder(tok, False), max_new_tokens=8)
    samples = load_jsonl(data_dir / "test.jsonl").samples
    whole = evaluate(engine, PromptParityRewards(), samples, batch_size=4)
    shards = [evaluate(engine, PromptParityRewards(), samples[r::4], batch_size=4) for r in range(4)]  # one is empty
    merged = merge_reports(shards, [s.id for s in samples])
    assert 0 < sum(whole["correct"].values()) < len(samples)  # both outcomes occur
    assert list(merged["correct"].items()) == list(whole["correct"].items())
    for key in ("n", "accuracy", "per_task_type", "format_compliance"):
        assert merged[key] == whole[key], key
    assert merged["response_length_mean"] == pytest.approx(whole["response_length_mean"])
