"""Rollout tensors and log-probs: EOS masks, row selection of image inputs, batched == per-row,
fused LM-head path == logits path."""

from __future__ import annotations

import pytest
import torch

from harmo_fast.data.jsonl import load_jsonl
from harmo_fast.data.synth import write_synth
from harmo_fast.trainer.logprobs import completion_logprobs, supports_linear_path
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import HFRolloutEngine, completion_mask
from harmo_fast.trainer.tiny_policy import build_tiny_vlm

torch.set_num_threads(1)


def test_completion_mask_stops_at_the_first_eos():
    ids = torch.tensor([[5, 9, 2, 7], [5, 6, 7, 8], [3, 3, 3, 3], [1, 2, 3, 4]])
    mask, lengths, truncated = completion_mask(ids, [2, 3])
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert lengths.tolist() == [3, 4, 1, 2]
    assert truncated.tolist() == [False, True, False, False]


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synth(d, 3, 0, seed=4)
    samples = load_jsonl(d / "train.jsonl").samples
    model, processor = build_tiny_vlm(
        seed=0, hidden_size=64, intermediate_size=128, vision_embed_dim=32, vision_depth=1, vision_num_heads=2
    )
    model.train()
    engine = HFRolloutEngine(model, PromptEncoder(processor, True), max_new_tokens=10, temperature=1.0)
    torch.manual_seed(0)
    return model, engine, engine.generate(samples, 2), samples


def test_generate_groups_rows_and_masks_padding(rollout):
    _, engine, batch, samples = rollout
    assert batch.size == 6 and batch.group_ids.tolist() == [0, 0, 1, 1, 2, 2]
    assert [s.id for s in batch.samples] == [s.id for s in samples for _ in range(2)]
    assert (batch.completion_ids[~batch.completion_mask] == engine.pad_id).all()
    assert batch.lengths.tolist() == batch.completion_mask.sum(1).tolist()
    # no image placeholder may be sampled into a completion
    assert not torch.isin(batch.completion_ids, torch.tensor(engine.suppress_ids)).any()
    assert len(batch.texts) == 6 and batch.image_counts.tolist() == [1] * 6


def _logp(model, batch, rows, path):
    width = int(batch.lengths[rows].max())
    with torch.no_grad():
        logp, _ = completion_logprobs(
            model,
            batch.model_inputs(rows, width),
            batch.completion_ids[rows, :width],
            batch.completion_mask[rows, :width],
            path=path,
        )
    out = torch.zeros(len(rows), batch.completion_ids.shape[1])
    out[:, :width] = logp
    return out


def test_batched_log_probs_equal_per_row_and_both_paths_agree(rollout):
    model, _, batch, _ = rollout
    assert supports_linear_path(model)
    rows = list(range(batch.size))
    full = _logp(model, batch, rows, "linear")
    single = torch.cat([_logp(model, batch, [i], "linear") for i in rows])
    torch.testing.assert_close(full, single, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(_logp(model, batch, [4, 1], "linear"), single[[4, 1]], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(_logp(model, batch, rows, "logits"), full, atol=2e-5, rtol=1e-5)
    assert (full[batch.completion_mask] < 0).all() and (full[~batch.completion_mask] == 0).all()


def test_log_probs_match_the_sampling_distribution(rollout):
    """The forward pass scores the sampled tokens as generate() saw them: compare with the
    per-step scores of a greedy decode (argmax tokens must have the highest log-prob)."""
    model, engine, _, samples = rollout
    greedy = engine.generate(samples[:1], 1, greedy=True)
    width = int(greedy.lengths.max())
    inputs = greedy.model_inputs([0], width)
    with torch.no_grad():
        logits = model(**inputs, use_cache=False).logits[0, -width - 1 : -1]
    assert torch.equal(logits.argmax(-1), greedy.completion_ids[0, :width])
