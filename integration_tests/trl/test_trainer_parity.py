"""HarmoGRPOTrainer against TRL's own GRPOTrainer: 3 optimizer steps of each from the same seed on a
tiny random Qwen2, off-policy (num_iterations=2) with gradient accumulation, so ratios, clipping and
the accumulation scaling all matter. Logged loss and grad_norm must agree within 1e-5 (relative to
the value above 1) at every step for each supported loss_type, with and without the KL term; TRL's
loss metrics must agree too."""

from __future__ import annotations

import pytest
from tiny_setup import arithmetic_prompts, digit_reward, tiny_tokenizer
from trl import GRPOConfig, GRPOTrainer

from harmo_fast.integrations import trl as harmo_trl
from harmo_fast.integrations.trl import TRL_NORMALISATIONS, HarmoGRPOTrainer

METRICS = (
    "kl",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/low_min",
    "clip_ratio/high_mean",
    "clip_ratio/high_max",
    "clip_ratio/region_mean",
)


def _config(out: str, **overrides) -> GRPOConfig:
    settings = dict(
        output_dir=out,
        per_device_train_batch_size=4,
        num_generations=4,
        gradient_accumulation_steps=2,
        num_iterations=2,
        max_completion_length=8,
        max_steps=3,
        learning_rate=0.1,
        optim="sgd",  # Adam would amplify 1e-7 differences of near-zero gradient entries into the next step
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        seed=0,
        use_cpu=True,
        bf16=False,  # fp32: both heads then compute the same numbers; see test_bf16_autocast_is_close
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def _run(trainer_class, model_dir: str, out: str, **overrides) -> list[dict]:
    trainer = trainer_class(
        model=model_dir,
        reward_funcs=digit_reward,
        args=_config(out, **overrides),
        train_dataset=arithmetic_prompts(),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    return [h for h in trainer.state.log_history if "loss" in h]


def _compare(stock: list[dict], ours: list[dict], metrics=METRICS) -> float:
    assert len(stock) == len(ours) == 3
    worst = 0.0
    for s, o in zip(stock, ours):
        for key in ("loss", "grad_norm"):
            # 1e-5, relative above 1: luspo's unnormalised row sums reach grad norms of ~70, where
            # one fp32 ulp is 7.6e-6
            assert abs(o[key] - s[key]) <= 1e-5 * max(1.0, abs(s[key])), (key, s, o)
            worst = max(worst, abs(o[key] - s[key]))
        for key in metrics:
            assert (key in s) == (key in o), key
            if key in s:
                assert o[key] == pytest.approx(s[key], rel=1e-5, abs=1e-6), (key, s[key], o[key])
    return worst


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("loss_type", sorted(TRL_NORMALISATIONS))
def test_loss_and_grad_norm_match_trl(tiny_model_dir, tmp_path, loss_type, beta):
    settings = dict(loss_type=loss_type, beta=beta)
    stock = _run(GRPOTrainer, tiny_model_dir, str(tmp_path / "stock"), **settings)
    ours = _run(HarmoGRPOTrainer, tiny_model_dir, str(tmp_path / "ours"), **settings)
    _compare(stock, ours)
    # the comparison is not vacuous: the loss is not ~0 and the second pass over a generation clips
    assert any(abs(h["loss"]) > 1e-3 for h in stock)
    assert any(h["clip_ratio/region_mean"] > 0 for h in stock)


@pytest.mark.parametrize(
    "settings",
    [
        dict(loss_type="luspo", importance_sampling_level="sequence", beta=0.04, use_bias_correction_kl=True),
        dict(loss_type="grpo", delta=1.5, epsilon_high=0.28, beta=0.04, use_bias_correction_kl=True),
        dict(loss_type="dapo", top_entropy_quantile=0.5, off_policy_mask_threshold=0.01),
    ],
    ids=["sequence-level", "delta-bias-corrected", "entropy-and-off-policy-masks"],
)
def test_options_match_trl(tiny_model_dir, tmp_path, settings):
    stock = _run(GRPOTrainer, tiny_model_dir, str(tmp_path / "stock"), **settings)
    ours = _run(HarmoGRPOTrainer, tiny_model_dir, str(tmp_path / "ours"), **settings)
    _compare(stock, ours)


def test_logprobs_go_through_our_kernels(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    route = harmo_trl.LOGPROB_ROUTES[harmo_trl.check_trl_version()]
    target = route.kernel
    original = getattr(harmo_trl, target)
    monkeypatch.setattr(harmo_trl, target, lambda *a, **k: calls.append(1) or original(*a, **k))
    _run(HarmoGRPOTrainer, tiny_model_dir, str(tmp_path / "ours"), max_steps=1, loss_type="bnpo")
    assert calls


@pytest.mark.skipif(harmo_trl.trl_minor_version() != "1.16", reason="the fused LM head exists from trl 1.15 on")
@pytest.mark.parametrize(
    ("settings", "fused"),
    [
        (dict(loss_type="bnpo"), True),
        (dict(loss_type="dapo", top_entropy_quantile=0.5), False),
        (dict(loss_type="grpo", off_policy_mask_threshold=0.01), False),
    ],
    ids=["plain", "entropy-mask", "off-policy-mask"],
)
def test_loss_from_hidden_states_when_nothing_needs_the_logprobs(
    tiny_model_dir, tmp_path, monkeypatch, settings, fused
):
    """The plain case trains through linear_grpo_loss (the parity tests above then check its numbers);
    a mask that needs the log-probs before the loss keeps the two-op route."""
    calls = []
    original = harmo_trl.linear_grpo_loss
    monkeypatch.setattr(harmo_trl, "linear_grpo_loss", lambda *a, **k: calls.append(1) or original(*a, **k))
    _run(HarmoGRPOTrainer, tiny_model_dir, str(tmp_path / "ours"), max_steps=1, **settings)
    assert bool(calls) == fused


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (dict(loss_type="sapo"), "loss_type='sapo' is not supported; use one of"),
        (dict(loss_type="cispo"), "bnpo"),
        (dict(entropy_coef=0.01), "entropy bonus"),
    ],
)
def test_unsupported_settings_raise(tiny_model_dir, tmp_path, settings, match):
    with pytest.raises(ValueError, match=match):
        HarmoGRPOTrainer(
            model=tiny_model_dir,
            reward_funcs=digit_reward,
            args=_config(str(tmp_path), **settings),
            train_dataset=arithmetic_prompts(),
            processing_class=tiny_tokenizer(),
        )


def test_version_gate():
    assert harmo_trl.check_trl_version("1.16.0") == "1.16"
    assert harmo_trl.check_trl_version("1.13.2") == "1.13"
    with pytest.raises(ImportError, match=r"supports trl 1\.13\.x, 1\.16\.x; trl 1\.14\.0 is installed"):
        harmo_trl.check_trl_version("1.14.0")


def test_bf16_autocast_is_close(tiny_model_dir, tmp_path):
    """Under bf16 autocast both heads compute bf16 logits; TRL returns the head's gradients in
    fp32, ours in the autocast dtype (like an autocast matmul), so they agree to bf16 precision."""
    stock = _run(GRPOTrainer, tiny_model_dir, str(tmp_path / "stock"), loss_type="bnpo", bf16=True)
    ours = _run(HarmoGRPOTrainer, tiny_model_dir, str(tmp_path / "ours"), loss_type="bnpo", bf16=True)
    for s, o in zip(stock, ours, strict=True):
        assert o["loss"] == pytest.approx(s["loss"], abs=1e-3)
        assert o["grad_norm"] == pytest.approx(s["grad_norm"], rel=1e-2)


@pytest.mark.skipif(harmo_trl.trl_minor_version() != "1.16", reason="the fused LM head exists from trl 1.15 on")
def test_scaled_heads_keep_trls_head(tiny_model_dir, caplog):
    """A head TRL scales or soft-caps is left to TRL (ours has no such transform), with a warning."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.final_logit_softcapping = 30.0
    add_fused_lm_head(model)
    trl_forward = model.forward
    harmo_trl.install_fused_head(model, 1.0, fp32=False, entropy=False)
    assert model.forward is trl_forward
    assert "final_logit_softcapping=30.0" in caplog.text
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    add_fused_lm_head(plain)
    trl_forward = plain.forward
    harmo_trl.install_fused_head(plain, 1.0, fp32=False, entropy=False)
    assert plain.forward is not trl_forward
