"""The supervised warm-up: loss on completion tokens only, the loss falls, a memorised target is
generated back in the answer format, bad arguments are named."""

from __future__ import annotations

import random

import pytest
import torch

from harmo_fast.data.synth import make_sample
from harmo_fast.rewards import verify
from harmo_fast.trainer.tiny_policy import build_tiny_lm, build_tiny_vlm
from harmo_fast.trainer.warmup import IGNORE, _Batcher, supervised_warmup, target_completion

SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vision_embed_dim": 32,
    "vision_depth": 1,
    "vision_num_heads": 2,
}


def _vlm_samples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = make_sample(rng, ["counting", "mc_color", "yes_no", "numeric"][i % 4])
        s["images"] = [s.pop("image")]
        out.append(s)
    return out


def test_target_uses_rationale_or_restates_the_answer():
    assert target_completion({"answer": "B", "rationale": "the square is red which is option B"}) == (
        "<think>the square is red which is option B</think><answer>B</answer>"
    )
    assert target_completion({"answer": ["7", "seven"]}) == "<think>the answer is 7</think><answer>7</answer>"


def test_labels_cover_exactly_the_completion_tokens():
    _, proc = build_tiny_vlm(seed=0, **SMALL)
    samples = _vlm_samples(3)
    batch = _Batcher(proc, None)(samples)
    tok = proc.tokenizer
    for i, s in enumerate(samples):
        labelled = batch["labels"][i][batch["labels"][i] != IGNORE].tolist()
        assert tok.decode(labelled) == target_completion(s) + tok.eos_token
        # Every labelled token is attended, and the prompt (with its image tokens) is not labelled.
        assert bool((batch["attention_mask"][i][batch["labels"][i] != IGNORE] == 1).all())
    image_rows = batch["input_ids"] == proc.image_token_id
    assert bool((batch["labels"][image_rows] == IGNORE).all())
    assert batch["pixel_values"].shape[0] == 3 * 16  # 16 patches per 56x56 image


def test_vlm_warmup_lowers_the_completion_loss():
    model, proc = build_tiny_vlm(seed=0, **SMALL)
    stats = supervised_warmup(model, proc, _vlm_samples(8), steps=40, lr=3e-3, batch_size=4, seed=0)
    assert stats["steps"] == 40
    assert stats["loss_final"] < 0.5 * stats["loss_first"], stats


def test_lm_warmup_teaches_the_format_and_a_memorised_answer():
    model, tok = build_tiny_lm(seed=0, **SMALL)
    samples = [
        {"prompt": "what is the value of 3+4?", "answer": "7", "task_type": "math", "rationale": "3 plus 4 equals 7"},
        {"prompt": "is there a red circle?", "answer": "no", "task_type": "yes_no"},
    ]
    supervised_warmup(model, tok, samples, steps=40, lr=5e-3, batch_size=2, seed=0)
    assert not model.training
    for s in samples:
        text = tok.apply_chat_template(
            [{"role": "user", "content": s["prompt"]}], add_generation_prompt=True, tokenize=False
        )
        enc = tok([text], return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=24, do_sample=False)
        completion = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert completion == target_completion(s)
        assert verify(completion, s["answer"], s["task_type"]).correct


def test_same_seed_same_result_and_bad_arguments():
    samples = [{"prompt": "how many shapes are there?", "answer": "2", "task_type": "counting"}]
    losses = []
    for _ in range(2):
        model, tok = build_tiny_lm(seed=0, **SMALL)
        losses.append(supervised_warmup(model, tok, samples, steps=3, lr=1e-3, batch_size=3, seed=1)["loss_final"])
    assert losses[0] == losses[1]
    model, tok = build_tiny_lm(seed=0, **SMALL)
    with pytest.raises(ValueError, match="batch_size"):
        supervised_warmup(model, tok, samples, steps=1, lr=1e-3, batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        supervised_warmup(model, tok, samples, steps=1, lr=float("nan"), batch_size=1)
    with pytest.raises(ValueError, match="samples"):
        supervised_warmup(model, tok, [], steps=1, lr=1e-3, batch_size=1)
    before = [p.detach().clone() for p in model.parameters()]
    assert supervised_warmup(model, tok, samples, steps=0, lr=1e-3, batch_size=1)["steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_warmup_prompts_are_the_rollout_prompts():
    """The warm-up teaches the completion after the prompt GRPO and evaluation see: the run's
    template and system prompt inside the chat template, not the bare prompt."""
    from harmo_fast.data.jsonl import Sample
    from harmo_fast.trainer.prompts import PromptEncoder

    _, tok = build_tiny_lm(seed=0, **SMALL)
    encoder = PromptEncoder(tok, False, "{prompt}\nAnswer inside <answer> tags.", "You are terse.")
    samples = [Sample("a", "What is 3 + 4?", "7", "math"), Sample("b", "What is 12 - 5?", "7", "math")]
    batch = _Batcher(tok, None, encoder)(samples)
    expected = encoder.encode(samples)
    width = expected["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][:, :width], expected["input_ids"])
    assert torch.equal(batch["attention_mask"][:, :width], expected["attention_mask"])
    assert bool((batch["labels"][:, :width] == IGNORE).all())
    text = tok.decode(expected["input_ids"][0])
    assert "Answer inside <answer> tags." in text and "You are terse." in text
