"""One GRPO training step of HarmoGRPOTrainer against TRL's stock GRPOTrainer, on the same tiny
random Qwen2 (built in code): time and peak memory, printed as ratios.

The step is what differs between the trainers (stock; ours with linear_log_probs + grpo_loss; ours
with linear_grpo_loss): `compute_loss` (the policy's log-probs and the GRPO loss) and its backward,
on a fixed batch of B completions of T tokens after an 8-token prompt (generation and the optimizer
are the same code in all and left out). Memory: peak extra resident
memory of the step beyond the model, its gradients and the batch (see _memory.py), each trainer in
a fresh process. Needs trl (a TRL venv, see .ci/trl.sh), so it is a script, not collected tests:

    PYTHONPATH=. python benchmarks/bench_trl_step.py [--batch 8 --tokens 256 --hidden 256 --vocab 32768]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import torch

try:
    from benchmarks._memory import peak_extra_bytes
except ImportError:  # run from inside benchmarks/
    from _memory import peak_extra_bytes

try:
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from harmo_fast.integrations.trl import HarmoGRPOTrainer
except ImportError:  # collected by pytest in a venv without trl: nothing here runs then
    GRPOTrainer = None

PROMPT = 8
KINDS = {
    "stock": "trl.GRPOTrainer",
    "harmo-two-op": "HarmoGRPOTrainer, linear_log_probs + grpo_loss",
    "harmo": "HarmoGRPOTrainer, linear_grpo_loss",
}
MIB = 1 << 20


def _trainer(kind: str, hidden: int, vocab: int):
    if GRPOTrainer is None:
        raise SystemExit("bench_trl_step needs trl: run it in a TRL venv (see .ci/trl.sh)")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    words = ["<pad>", "<eos>", "<unk>", "x"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=8,
        num_generations=8,
        report_to="none",
        use_cpu=True,
        bf16=False,
        loss_type="grpo",
    )
    cls = GRPOTrainer if kind == "stock" else HarmoGRPOTrainer
    trainer = cls(
        model=Qwen2ForCausalLM(config),
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["x"] * 8}),
        processing_class=tokenizer,
    )
    trainer.model.train()
    if kind == "harmo-two-op":
        trainer.harmo_fused_loss = False  # linear_log_probs, then grpo_loss
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train() otherwise
    return trainer


def step(kind: str, batch: int, tokens: int, hidden: int, vocab: int) -> Callable[[], None]:
    """A zero-argument callable running one compute_loss + backward of the `kind` trainer."""
    trainer = _trainer(kind, hidden, vocab)
    g = torch.Generator().manual_seed(1)
    inputs = {
        "prompt_ids": torch.randint(3, vocab, (batch, PROMPT), generator=g),
        "prompt_mask": torch.ones(batch, PROMPT, dtype=torch.int64),
        "completion_ids": torch.randint(3, vocab, (batch, tokens), generator=g),
        "completion_mask": torch.ones(batch, tokens, dtype=torch.int64),
        "advantages": torch.randn(batch, generator=g),
        "num_items_in_batch": torch.tensor(batch * tokens),
    }

    def run() -> None:
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=2)
    a = parser.parse_args()
    shape = (a.batch, a.tokens, a.hidden, a.vocab)
    seconds, peaks = {}, {}
    for kind in KINDS:
        run = step(kind, *shape)
        run()  # warm-up
        t0 = time.perf_counter()
        for _ in range(a.repeats):
            run()
        seconds[kind] = (time.perf_counter() - t0) / a.repeats
        peaks[kind] = peak_extra_bytes("bench_trl_step:step", kind, *shape) / MIB
    print(f"GRPO step (compute_loss + backward), B={a.batch} T={a.tokens} H={a.hidden} V={a.vocab}, fp32, CPU")
    for kind, name in KINDS.items():
        print(f"  {name:44s} {seconds[kind]:8.2f} s  peak extra {peaks[kind]:8.0f} MiB")
    for kind in ("harmo-two-op", "harmo"):
        print(
            f"  ratio stock/{kind}: time {seconds['stock'] / seconds[kind]:.2f}x, "
            f"peak memory {peaks['stock'] / max(peaks[kind], 1e-9):.1f}x"
        )


if __name__ == "__main__":
    main()
