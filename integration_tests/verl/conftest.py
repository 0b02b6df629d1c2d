"""Shared pieces of the verl integration tests (run in a venv with `.[verl]` installed): verl's
Hydra trainer config composed with the README's command line, a byte-level tokenizer built in
code (no downloads), and DataProto batches shaped as verl's rollout produces them."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("verl", reason="the verl integration tests need verl (pip install '.[verl]')")

import verl
from hydra import compose, initialize_config_dir
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from verl import DataProto

import harmo_fast.integrations.verl  # noqa: F401  (registers the "harmo" names)

README = Path(__file__).resolve().parents[2] / "README.md"
PAD, EOS = "<pad>", "<eos>"


def readme_command() -> str:
    """The verl training command of the README (the shell block that runs verl.trainer.main_ppo)."""
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if "verl.trainer.main_ppo" in b]
    assert len(found) == 1, "the README must hold exactly one verl.trainer.main_ppo command"
    return found[0]


def readme_overrides() -> list[str]:
    """The Hydra overrides of the README command (its key=value arguments after the module name)."""
    words = shlex.split(readme_command().replace("\\\n", " "))
    start = words.index("verl.trainer.main_ppo") + 1
    return words[start:]


def compose_trainer_config(overrides: list[str]):
    """verl's ppo_trainer config, composed by Hydra as `python -m verl.trainer.main_ppo` does."""
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("ppo_trainer", overrides=overrides)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> str:
    """A byte-level tokenizer without merges (every text round-trips), saved as a Hugging Face
    tokenizer so that verl's hf_tokenizer loads it from the path."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {PAD: 0, EOS: 1, **{ch: i + 2 for i, ch in enumerate(sorted(alphabet))}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from verl.utils import hf_tokenizer

    return hf_tokenizer(tokenizer_dir)


def trainer_config_for(tokenizer_dir: str, extra: list[str] = ()):
    """The README's config with the model path pointing at the test tokenizer, plus `extra`
    overrides (those replace the README's value of the same key)."""
    keys = {o.lstrip("+").split("=", 1)[0] for o in [*extra, "actor_rollout_ref.model.path="]}
    base = [o for o in readme_overrides() if o.lstrip("+").split("=", 1)[0] not in keys]
    return compose_trainer_config([*base, f"actor_rollout_ref.model.path={tokenizer_dir}", *extra])


def _objects(values: list) -> np.ndarray:
    """A 1-D object array of `values` (numpy would nest lists into more dimensions)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def make_batch(
    tokenizer,
    responses: list[str],
    ground_truths: list,
    uids: list[str],
    *,
    data_source: str = "openai/gsm8k",
    extra_infos: list[dict] | None = None,
    prompt: str = "What is 2+2?",
    response_length: int | None = None,
) -> DataProto:
    """A DataProto as verl's rollout hands it to the reward loop: left-padded prompts, right-padded
    responses (EOS appended), attention_mask over both, and the dataset's non-tensor columns."""
    n = len(responses)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rows = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in responses]
    width = response_length or max(len(r) for r in rows) + 3
    pad = tokenizer.pad_token_id
    prompts = torch.tensor([prompt_ids] * n)
    resp = torch.full((n, width), pad)
    resp_mask = torch.zeros((n, width), dtype=torch.int64)
    for i, r in enumerate(rows):
        resp[i, : len(r)] = torch.tensor(r)
        resp_mask[i, : len(r)] = 1
    attention = torch.cat([torch.ones_like(prompts), resp_mask], dim=1)
    infos = extra_infos or [{"index": i} for i in range(n)]
    non_tensors = {
        "data_source": np.array([data_source] * n, dtype=object),
        "reward_model": np.array([{"ground_truth": g, "style": "rule"} for g in ground_truths], dtype=object),
        "extra_info": np.array(infos, dtype=object),
        "uid": np.array(uids, dtype=object),
        "raw_prompt": _objects([[{"role": "user", "content": prompt}] for _ in range(n)]),
    }
    tensors = {
        "prompts": prompts,
        "responses": resp,
        "input_ids": torch.cat([prompts, resp], dim=1),
        "attention_mask": attention,
        "response_mask": resp_mask,
    }
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def score_batch(worker, batch: DataProto) -> list[dict]:
    """verl's RewardLoopWorker.compute_score_batch on the worker's own event loop (verl's managers
    schedule their executor calls on the loop they were created with, as in a Ray actor)."""
    return worker.loop.run_until_complete(worker.compute_score_batch(batch))
