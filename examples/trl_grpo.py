"""GRPO with TRL, HARMO's kernels and HARMO's rewards: a complete run on CPU in well under two
minutes, on a tiny random Qwen2 and a word-level tokenizer built here (nothing is downloaded).

    pip install torch==2.13.0 && pip install ".[trl]"
    python examples/trl_grpo.py

For a real model, pass its name or path as `model=` and keep the rest: HarmoGRPOTrainer takes
GRPOTrainer's arguments, and the dataset needs a `prompt` and an `answer` column (optionally
`task_type`, `reference`, `choices`).
"""

from __future__ import annotations

import tempfile

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from trl import GRPOConfig

from harmo_fast.integrations.trl import HarmoGRPOTrainer
from harmo_fast.integrations.trl_rewards import trl_reward_funcs
from harmo_fast.rewards.config import RewardConfig

WORDS = ["<pad>", "<eos>", "<unk>", *map(str, range(10)), "+", "?", "what", "is"]
WORDS += ["<think>", "</think>", "<answer>", "</answer>"]


def tiny_model_and_tokenizer() -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(WORDS),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        eos_token_id=1,
        pad_token_id=0,
    )
    return Qwen2ForCausalLM(config), tokenizer


def main() -> None:
    model, tokenizer = tiny_model_and_tokenizer()
    pairs = [(a, b) for a in range(5) for b in range(5)]
    dataset = Dataset.from_dict(
        {
            "prompt": [f"what is {a} + {b} ?" for a, b in pairs],
            "answer": [str(a + b) for a, b in pairs],
            "task_type": ["math"] * len(pairs),
        }
    )
    # hybrid accuracy, length penalty and format rewards; TRL logs each, weighted as HARMO's total
    reward_funcs, reward_weights = trl_reward_funcs(RewardConfig(num_workers=1))
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="harmo_trl_"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=16,
        max_steps=4,
        learning_rate=1e-3,
        loss_type="dr_grpo",  # also grpo, bnpo, dapo, luspo
        beta=0.0,
        reward_weights=reward_weights,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
    )
    trainer = HarmoGRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()
    for log in trainer.state.log_history:
        if "loss" in log:
            print(
                f"step {log['step']}: loss {log['loss']:+.4f}  reward {log['reward']:+.3f}  "
                f"hybrid {log['rewards/harmo_hybrid/mean']:.3f}  clip {log['clip_ratio/region_mean']:.3f}"
            )
    for func in reward_funcs:
        func.close()


if __name__ == "__main__":
    main()
