"""The shared-prompt forward (each distinct prompt once, its KV cache indexed out to its rows)
equals the full forward over prompt + completion per row: hidden states, log-probs on both paths,
the gradients of a GRPO loss, and a whole GRPO update."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from trainer_fakes import LetterRewards, tiny_config

from harmo_fast.data.jsonl import Sample
from harmo_fast.data.synth import write_synth
from harmo_fast.trainer.config import AlgorithmConfig
from harmo_fast.trainer.logprobs import SharedPromptInputs, completion_hidden, completion_logprobs
from harmo_fast.trainer.loss import micro_batch_loss_from_hidden
from harmo_fast.trainer.metrics import read_metrics
from harmo_fast.trainer.rollout import RolloutBatch
from harmo_fast.trainer.run import train
from harmo_fast.trainer.tiny_policy import build_tiny_lm

torch.set_num_threads(1)

PROMPT_LENGTHS = (5, 11, 2)  # left padding of different widths
COMPLETION_LENGTHS = ((1, 6, 3), (7, 2, 7), (4, 1, 5))  # per group: right padding, one row of width 1
ROWS = [4, 0, 8, 2, 6, 1, 5]  # several groups, interleaved, not every row of each


@pytest.fixture(scope="module")
def model():
    model, _ = build_tiny_lm(seed=0, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    return model.train()


def _batch(vocab: int, pad: int) -> RolloutBatch:
    """3 prompts x 3 responses with random tokens: left-padded prompts, right-padded completions."""
    g = torch.Generator().manual_seed(0)
    width_p, width_c = max(PROMPT_LENGTHS), max(max(c) for c in COMPLETION_LENGTHS)
    prompt_ids = torch.full((9, width_p), pad)
    prompt_mask = torch.zeros(9, width_p, dtype=torch.long)
    ids = torch.full((9, width_c), pad)
    mask = torch.zeros(9, width_c, dtype=torch.bool)
    for group, (n, lengths) in enumerate(zip(PROMPT_LENGTHS, COMPLETION_LENGTHS)):
        prompt = torch.randint(3, vocab, (n,), generator=g)
        for k, length in enumerate(lengths):
            row = 3 * group + k
            prompt_ids[row, width_p - n :] = prompt
            prompt_mask[row, width_p - n :] = 1
            ids[row, :length] = torch.randint(3, vocab, (length,), generator=g)
            mask[row, :length] = True
    samples = [Sample(id=str(i // 3), prompt="", answer="", task_type="text") for i in range(9)]
    return RolloutBatch(
        samples=samples,
        group_ids=torch.arange(3).repeat_interleave(3),
        prompt={"input_ids": prompt_ids, "attention_mask": prompt_mask},
        completion_ids=ids,
        completion_mask=mask,
        lengths=mask.sum(1),
        truncated=torch.zeros(9, dtype=torch.bool),
        texts=[""] * 9,
    )


@pytest.fixture(scope="module")
def batch(model):
    return _batch(model.config.vocab_size, model.config.pad_token_id or 0)


def _both(batch: RolloutBatch, rows: list[int]) -> tuple[int, dict[str, torch.Tensor], SharedPromptInputs]:
    width = int(batch.lengths[rows].max())
    return width, batch.model_inputs(rows, width), batch.shared_inputs(rows, width)


def test_shared_inputs_hold_each_distinct_prompt_once(batch):
    shared = batch.shared_inputs(ROWS, 7)
    assert shared.prompt_ids.shape == (3, max(PROMPT_LENGTHS))
    assert shared.index.tolist() == [0, 1, 2, 1, 2, 1, 0]  # groups in order of first appearance: 1, 0, 2
    for row, slot in zip(ROWS, shared.index.tolist()):
        assert torch.equal(shared.prompt_ids[slot], batch.prompt["input_ids"][row])
    # columns that are padding in every selected prompt are dropped
    assert batch.shared_inputs([6, 7], 5).prompt_ids.shape == (1, PROMPT_LENGTHS[2])


def test_hidden_states_equal_the_full_forward(model, batch):
    width, full, shared = _both(batch, ROWS)
    with torch.no_grad():
        h_full, _ = completion_hidden(model, full, width)
        h_shared, _ = completion_hidden(model, shared, width)
    mask = batch.completion_mask[ROWS, :width]
    assert h_shared.shape == h_full.shape
    torch.testing.assert_close(h_shared[mask], h_full[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["linear", "logits"])
def test_log_probs_equal_the_full_forward(model, batch, path):
    width, full, shared = _both(batch, ROWS)
    ids, mask = batch.completion_ids[ROWS, :width], batch.completion_mask[ROWS, :width]
    with torch.no_grad():
        lp_full, ent_full = completion_logprobs(model, full, ids, mask, path=path, entropy=True, temperature=0.7)
        lp_shared, ent_shared = completion_logprobs(model, shared, ids, mask, path=path, entropy=True, temperature=0.7)
    torch.testing.assert_close(lp_shared, lp_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent_shared, ent_full, atol=1e-5, rtol=1e-5)
    assert (lp_full[mask] < 0).all()


def test_single_column_completions_need_only_the_prompt_forward(model, batch):
    rows = [0, 7]  # completion lengths 1 and 1
    width, full, shared = _both(batch, rows)
    assert width == 1
    with torch.no_grad():
        torch.testing.assert_close(completion_hidden(model, shared, 1)[0], completion_hidden(model, full, 1)[0])


def _grads(model, batch, inputs, width: int) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    hidden, weight = completion_hidden(model, inputs, width)
    mask = batch.completion_mask[ROWS, :width]
    adv = torch.linspace(-1.0, 1.0, len(ROWS))
    loss, _ = micro_batch_loss_from_hidden(
        AlgorithmConfig(),
        hidden,
        weight,
        batch.completion_ids[ROWS, :width],
        None,
        None,
        adv,
        mask.float(),
        tokens_mb=float(mask.sum()),
        share=1.0,
        max_new_tokens=width,
        temperature=1.0,
        entropy=False,
    )
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_gradients_equal_the_full_forward(model, batch):
    width, full, shared = _both(batch, ROWS)
    g_full, g_shared = _grads(model, batch, full, width), _grads(model, batch, shared, width)
    model.zero_grad(set_to_none=True)
    assert g_full.keys() == g_shared.keys() == {n for n, _ in model.named_parameters()}
    for name, g in g_full.items():
        assert g.abs().max() > 0, name
        torch.testing.assert_close(g_shared[name], g, atol=1e-7, rtol=1e-5, msg=name)


def test_grpo_update_with_shared_prompts_equals_the_full_forward(tmp_path, monkeypatch):
    """A whole step (the fused loss, then the log-prob path of the reference under beta > 0) trains
    the same weights as the full forward; the update takes the shared-prompt inputs."""
    from harmo_fast.trainer import step

    d = tmp_path / "synth"
    write_synth(d, 8, 2, seed=1)
    calls: list[int] = []
    shared_inputs = RolloutBatch.shared_inputs
    monkeypatch.setattr(RolloutBatch, "shared_inputs", lambda *a: calls.append(1) or shared_inputs(*a))
    weights, metrics = {}, {}
    for name in ("shared", "full"):
        if name == "full":
            monkeypatch.setattr(step, "_inputs", lambda model, batch, rows, width: batch.model_inputs(rows, width))
        cfg = tiny_config(d, "trainer.steps=1", "algorithm.beta=0.1", "trainer.micro_batch_size=4")
        train(cfg, tmp_path / name, rewards=LetterRewards())
        weights[name] = load_file(str(tmp_path / name / "checkpoints" / "step-000001" / "weights.safetensors"))
        metrics[name] = read_metrics(tmp_path / name / "metrics.jsonl")[0]
        assert bool(calls) == (name == "shared")
        calls.clear()
    for k in ("loss", "kl", "grad_norm"):
        assert metrics["shared"][k] == pytest.approx(metrics["full"][k], rel=1e-4, abs=1e-7), k
    # AdamW moves every weight by about lr = 1e-3 whatever its gradient's size, so a gradient near
    # zero that differs in rounding moves its weight by a visible fraction of that.
    for k, v in weights["full"].items():
        torch.testing.assert_close(weights["shared"][k], v, atol=2e-5, rtol=1e-4)
