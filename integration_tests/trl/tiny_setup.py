"""A tiny causal LM and tokenizer built offline, a prompt set, and runs of a GRPO trainer on them,
shared by the TRL integration tests (and usable by examples and benchmarks)."""

from __future__ import annotations

import math
from typing import Any

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

WORDS = ["<pad>", "<eos>", "<unk>", *map(str, range(10)), *"abcdefghijklmnopqrstuvwxyz", "+", "=", "?", "what", "is"]
WORDS += ["<think>", "</think>", "<answer>", "</answer>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over WORDS (no download)."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def save_tiny_model(folder: str, hidden: int = 32, layers: int = 2, seed: int = 0, eos_boost: float = 25.0) -> str:
    """Save a random Qwen2ForCausalLM (vocabulary WORDS) and its tokenizer to `folder`."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(WORDS),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        # a long end-of-sequence row: completions end at varied lengths, so the loss types'
        # normalisations (per row, per token, per max length) give different values
        model.lm_head.weight[config.eos_token_id] *= eos_boost
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def arithmetic_prompts(n: int = 8) -> Dataset:
    """n prompts "what is a + b ?" with their answer column."""
    pairs = [(i % 5, (3 * i + 1) % 5) for i in range(n)]
    return Dataset.from_dict(
        {"prompt": [f"what is {a} + {b} ?" for a, b in pairs], "answer": [str(a + b) for a, b in pairs]}
    )


def digit_reward(completions: list[str], **kwargs: Any) -> list[float]:
    """A deterministic reward that varies across random completions: the share of digit words."""
    out = []
    for c in completions:
        words = c.split()
        out.append(sum(w.isdigit() for w in words) / max(len(words), 1) + 0.1 * math.cos(len(c)))
    return out
