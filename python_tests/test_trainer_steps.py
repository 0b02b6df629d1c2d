"""Full GRPO steps on tiny models: a text LM and a Qwen2-VL-family VLM."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from trainer_fakes import LetterRewards, tiny_config

import harmo_fast
from harmo_fast.data.synth import write_synth
from harmo_fast.trainer.metrics import METRIC_KEYS, read_metrics
from harmo_fast.trainer.plots import PLOTS
from harmo_fast.trainer.run import train
from harmo_fast.trainer.tiny_policy import build_tiny_lm

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synth(d, 16, 6, seed=0)
    return d


def _weights(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / f"step-{step:06d}" / "weights.safetensors"))


def test_text_model_steps_update_weights_and_log_everything(tmp_path, data_dir):
    cfg = tiny_config(data_dir, "logging.plots=true")
    rewards = LetterRewards()
    res = train(cfg, tmp_path, rewards=rewards)
    assert res.steps_done == 3 and not res.interrupted and rewards.closed
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert set(METRIC_KEYS) <= set(r), set(METRIC_KEYS) - set(r)
        assert math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0
        assert any(k.startswith("accuracy/") for k in r)
        assert r["time/step"] >= r["time/generation"] > 0
        assert r["nan_skipped"] == 0
    fresh, _ = build_tiny_lm(seed=0, **cfg.model.builtin_overrides)
    trained = _weights(tmp_path, 3)
    changed = [k for k, v in fresh.state_dict().items() if k in trained and not torch.equal(v, trained[k])]
    assert changed, "no weight changed after 3 GRPO steps"
    for name in PLOTS:
        assert (tmp_path / name).stat().st_size > 1000
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert {"completion", "reward", "components", "correct", "advantage"} <= set(samples[0])
    assert (tmp_path / "config.yaml").is_file()


def test_vlm_steps_with_the_reward_pipeline_warmup_and_evals(tmp_path, data_dir):
    cfg = tiny_config(
        data_dir,
        "trainer.steps=2",
        "warmup.steps=2",
        "warmup.batch_size=4",
        "eval.at_start=true",
        "eval.at_end=true",
        "checkpoint.save_final_model=true",
        model="tiny-vlm",
    )
    res = train(cfg, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert len(records) == 2 and all(set(METRIC_KEYS) <= set(r) for r in records)
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in records)
    for name in ("start", "warmup", "end"):
        report = json.loads((tmp_path / f"eval_{name}.json").read_text())
        assert report["n"] == 4 and 0.0 <= report["accuracy"] <= 1.0 and report["per_task_type"]
        assert res.evals[name] == report and report["seconds"] > 0
    gain = json.loads((tmp_path / "grpo_gain.json").read_text())  # GRPO's own gain, over the warm-up
    assert gain["baseline"] == "eval_warmup" and gain["n"] == 4
    assert gain["gain"] == pytest.approx(res.evals["end"]["accuracy"] - res.evals["warmup"]["accuracy"])
    assert (tmp_path / "final_model" / "config.json").is_file()


def test_nan_loss_skips_the_step_warns_and_counts(tmp_path, data_dir, monkeypatch):
    def nan_loss(real):
        def wrapped(*args, **kwargs):
            loss, metrics = real(*args, **kwargs)
            return loss * float("nan"), metrics

        return wrapped

    for name in ("grpo_loss", "linear_grpo_loss"):  # the two-op and the fused loss paths
        monkeypatch.setattr(harmo_fast, name, nan_loss(getattr(harmo_fast, name)))
    cfg = tiny_config(data_dir, "trainer.steps=2")
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        train(cfg, tmp_path, rewards=LetterRewards())
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["nan_skipped"] for r in records] == [1, 2]
    fresh, _ = build_tiny_lm(seed=0, **cfg.model.builtin_overrides)
    trained = _weights(tmp_path, 2)
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items() if k in trained)


def test_kl_to_a_frozen_reference_only_when_beta_positive(tmp_path, data_dir):
    cfg = tiny_config(data_dir, "algorithm.beta=0.1")
    train(cfg, tmp_path, rewards=LetterRewards())
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference before any update
    assert records[-1]["kl"] > 0
    ref = load_file(str(tmp_path / "reference" / "weights.safetensors"))
    fresh, _ = build_tiny_lm(seed=0, **cfg.model.builtin_overrides)
    assert all(torch.equal(v, ref[k]) for k, v in fresh.state_dict().items() if k in ref)
    cfg0 = tiny_config(data_dir, "trainer.steps=1")
    train(cfg0, tmp_path / "beta0", rewards=LetterRewards())
    assert not (tmp_path / "beta0" / "reference").exists()


def test_gradient_accumulation_matches_one_big_batch(tmp_path, data_dir):
    runs = {}
    for name, micro in (("whole", "null"), ("micro", "3")):
        cfg = tiny_config(data_dir, "trainer.steps=1", f"trainer.micro_batch_size={micro}")
        train(cfg, tmp_path / name, rewards=LetterRewards())
        runs[name] = _weights(tmp_path / name, 1)
    for k, v in runs["whole"].items():
        torch.testing.assert_close(runs["micro"][k], v, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("model", ["tiny-lm", "tiny-vlm"])
def test_fused_hidden_state_loss_matches_the_two_op_path(tmp_path, data_dir, monkeypatch, model):
    # One policy update per generation batch takes harmo.linear_grpo_loss on the hidden states;
    # forcing the two-op path (linear_log_probs, then grpo_loss) gives the same update.
    from harmo_fast.trainer import step

    fused_calls = []
    original = step.micro_batch_loss_from_hidden
    monkeypatch.setattr(
        step, "micro_batch_loss_from_hidden", lambda *a, **k: fused_calls.append(1) or original(*a, **k)
    )
    runs = {}
    for name in ("fused", "two_op"):
        if name == "two_op":
            monkeypatch.setattr(step, "uses_fused_loss", lambda st: False)
        cfg = tiny_config(data_dir, "trainer.steps=1", "algorithm.beta=0.1", "trainer.micro_batch_size=3", model=model)
        train(cfg, tmp_path / name, rewards=LetterRewards())
        runs[name] = (_weights(tmp_path / name, 1), read_metrics(tmp_path / name / "metrics.jsonl")[0])
        if name == "fused":
            assert fused_calls, "the fused loss was not used"
            fused_calls.clear()
    assert not fused_calls
    (w_fused, m_fused), (w_two, m_two) = runs["fused"], runs["two_op"]
    for k, v in w_two.items():
        torch.testing.assert_close(w_fused[k], v, atol=2e-6, rtol=1e-4)
    for k in ("loss", "kl", "entropy", "ratio_mean", "grad_norm"):
        assert m_fused[k] == pytest.approx(m_two[k], rel=1e-4, abs=1e-6), k


def test_trained_micro_batches_take_rows_in_order_of_length(tmp_path, data_dir):
    """After the first micro-batch (forwarded before the rewards arrive), the trained rows go into
    micro-batches in order of completion length, so each forward is padded to similar lengths; group
    by group where each distinct prompt is forwarded once per micro-batch (a text model)."""
    from harmo_fast.trainer.advantages import PendingAdvantages
    from harmo_fast.trainer.logprobs import shares_prompts
    from harmo_fast.trainer.rollout import reward_samples
    from harmo_fast.trainer.run import open_run
    from harmo_fast.trainer.step import _micro_batch_forwards, _trained_order

    cfg = tiny_config(
        data_dir, "algorithm.prompts_per_step=4", "trainer.micro_batch_size=2", "rollout.max_new_tokens=12"
    )
    run = open_run(cfg, tmp_path, LetterRewards())
    try:
        st = run.st
        batch = st.engine.generate(run.train_set.samples[:4], cfg.algorithm.group_size)
        assert len(set(batch.lengths.tolist())) > 1, "every completion has the same length: nothing to order"
        future = st.rewards.submit(reward_samples(batch))
        pending = PendingAdvantages(future, cfg.algorithm, st.policy.device, st.timer)
        rows = [r for r, _ in _micro_batch_forwards(st, batch, list(range(batch.size)), pending, fused=False)]
        assert shares_prompts(st.policy.model, batch.prompt)
    finally:
        run.close()
    lengths, groups = batch.lengths.tolist(), batch.group_ids.tolist()
    assert rows[0] == [0, 1]  # the first micro-batch, before the advantages are known
    trained = [(groups[i], lengths[i]) for r in rows[1:] for i in r]
    assert trained == sorted(trained) and len(trained) > 2
    by_length = [lengths[i] for i in _trained_order(batch, list(range(batch.size)), by_group=False)]
    assert by_length == sorted(lengths)
