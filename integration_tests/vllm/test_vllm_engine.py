"""VLLMRolloutEngine against the real vLLM: after a weight push, vLLM's greedy completions are the
policy's own greedy completions (transformers generate); sampled batches have the `hf` engine's
layout."""

from __future__ import annotations

import pytest
import torch
from conftest import engine_options

from harmo_fast.data.jsonl import Sample
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import HFRolloutEngine, completion_mask
from harmo_fast.trainer.rollout_vllm import VLLMRolloutEngine
from harmo_fast.trainer.tiny_policy import build_tiny_lm

MAX_NEW = 24
SAMPLES = [
    Sample(id=str(i), prompt=f"What is {i} + {i * 3}? Think, then answer.", answer=str(4 * i), task_type="numeric")
    for i in range(8)
]


@pytest.fixture(scope="module")
def engines():
    """(policy, hf engine, vLLM engine) on one tiny random Qwen2 (tied embeddings, fp32)."""
    model, tok = build_tiny_lm(seed=0)
    encoder = PromptEncoder(tok, False)
    hf = HFRolloutEngine(model, encoder, max_new_tokens=MAX_NEW)
    engine = VLLMRolloutEngine(model, encoder, max_new_tokens=MAX_NEW, **engine_options())
    yield model, hf, engine
    engine.close()


def _perturb(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def _assert_same(a, b) -> None:
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert torch.equal(a.completion_mask, b.completion_mask)
    assert torch.equal(a.lengths, b.lengths) and torch.equal(a.truncated, b.truncated)
    assert a.texts == b.texts


def test_greedy_equals_policy_before_and_after_weight_push(engines):
    model, hf, engine = engines
    start = engine.generate(SAMPLES, 1, greedy=True)
    _assert_same(start, hf.generate(SAMPLES, 1, greedy=True))
    for step in range(2):  # two pushes: every push must land, not only the first
        _perturb(model, seed=step)
        engine.sync_weights()
        pushed = engine.generate(SAMPLES, 1, greedy=True)
        _assert_same(pushed, hf.generate(SAMPLES, 1, greedy=True))
        assert not torch.equal(pushed.completion_ids, start.completion_ids), "the perturbation changed nothing"
        start = pushed
    assert engine.sync_seconds > 0 and engine.build_seconds > 0


def test_sampled_batch_has_the_hf_layout(engines):
    _, hf, engine = engines
    g = 4
    batch = engine.generate(SAMPLES[:3], g)
    reference = hf.generate(SAMPLES[:3], g)
    assert batch.size == 12 and batch.samples == reference.samples
    assert batch.group_ids.tolist() == reference.group_ids.tolist()
    assert batch.prompt.keys() == reference.prompt.keys()
    for key, value in reference.prompt.items():
        assert torch.equal(batch.prompt[key], value), key
    ids = batch.completion_ids
    assert ids.shape[1] <= MAX_NEW and int(batch.lengths.max()) == ids.shape[1]
    mask, lengths, truncated = completion_mask(ids, hf.eos_ids)
    assert torch.equal(mask, batch.completion_mask) and torch.equal(lengths, batch.lengths)
    assert torch.equal(truncated, batch.truncated)
    assert torch.equal(truncated, batch.lengths == MAX_NEW)
    assert (ids[~mask] == hf.pad_id).all()
    tok = hf.encoder.tokenizer
    assert batch.texts == tok.batch_decode(
        [row[:n] for row, n in zip(ids.tolist(), lengths.tolist())], skip_special_tokens=True
    )
    for group in ids.view(3, g, -1):  # n = G independent samples, not one repeated
        assert len({tuple(row.tolist()) for row in group}) > 1
    # the batch trains: its forward inputs have the prompt + completion width
    inputs = batch.model_inputs(list(range(batch.size)), ids.shape[1])
    assert inputs["input_ids"].shape[0] == batch.size


def test_max_new_tokens_override(engines):
    _, hf, engine = engines
    short = engine.generate(SAMPLES[:2], 1, greedy=True, max_new_tokens=3)
    assert short.completion_ids.shape[1] <= 3
    _assert_same(short, hf.generate(SAMPLES[:2], 1, greedy=True, max_new_tokens=3))


def _rows(batch) -> list[list[int]]:
    return [row[:n] for row, n in zip(batch.completion_ids.tolist(), batch.lengths.tolist())]


def test_group_seeds_make_a_group_independent_of_its_batch(engines):
    _, _, engine = engines
    seeds = [11, 22, 33, 2**62 + 44]  # group seeds are 63-bit (group_sampling.group_seed)
    engine.set_group_seeds(seeds)
    batch = _rows(engine.generate(SAMPLES[:4], 3))
    engine.set_group_seeds(seeds[2:3])
    assert _rows(engine.generate(SAMPLES[2:3], 3)) == batch[6:9]
    engine.set_group_seeds([12, *seeds[1:]])  # another seed for group 0 only
    other = _rows(engine.generate(SAMPLES[:4], 3))
    assert other[3:] == batch[3:] and other[:3] != batch[:3]
    engine.set_group_seeds([1, 2])
    with pytest.raises(ValueError, match="2 seeds for 4 prompts"):
        engine.generate(SAMPLES[:4], 3)
