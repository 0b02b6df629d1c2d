"""The supervised warm-up: a short SFT stage that teaches a randomly initialised policy the
`<think>...</think><answer>...</answer>` format (and some of the task) before GRPO, so that the
first GRPO groups already contain rewarded responses. The loss covers the completion tokens only."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from harmo_fast.data.jsonl import Sample
from harmo_fast.data.synth import rationale_for
from harmo_fast.trainer.prompts import PromptEncoder

IGNORE = -100


def _field(sample: Any, name: str, default: Any = None) -> Any:
    if isinstance(sample, Mapping):
        return sample.get(name, default)
    return getattr(sample, name, default)


def target_completion(sample: Any, think_tag: str = "think", answer_tag: str = "answer") -> str:
    """The completion the warm-up teaches: the sample's `rationale` (a short template reasoning,
    written by `harmo data synth`), else the synthetic set's template rebuilt from the prompt,
    else a sentence restating the answer."""
    answer = _field(sample, "answer")
    if isinstance(answer, (list, tuple)):
        answer = answer[0]
    rationale = (
        _field(sample, "rationale")
        or rationale_for(str(_field(sample, "prompt", "")), str(answer), _field(sample, "choices"))
        or f"the answer is {answer}"
    )
    return f"<{think_tag}>{rationale}</{think_tag}><{answer_tag}>{answer}</{answer_tag}>"


def _images(sample: Any, image_root: str | Path | None) -> list[Any]:
    out = []
    for item in _field(sample, "images") or ():
        if isinstance(item, (str, Path)):
            path = Path(item)
            if not path.is_absolute() and image_root is not None:
                path = Path(image_root) / path
            with Image.open(path) as img:
                out.append(img.convert("RGB"))
        else:
            out.append(item.convert("RGB"))
    return out


def _as_sample(sample: Any, images: list[Any]) -> Sample:
    """A `Sample` view of a dict or `Sample` (with its loaded images), for the prompt encoder."""
    if isinstance(sample, Sample):
        return Sample(sample.id, sample.prompt, sample.answer, sample.task_type, tuple(images), choices=sample.choices)
    return Sample(
        str(_field(sample, "id", "")),
        str(_field(sample, "prompt")),
        _field(sample, "answer"),
        str(_field(sample, "task_type", "")),
        tuple(images),
        choices=_field(sample, "choices"),
    )


class _Batcher:
    """Prompt + target tensors: prompts built by `encoder` as rollouts build them (prompt template,
    system prompt, chat template) and left-padded by the processor (which also expands image
    slots), targets appended and right-padded, labels set on the target tokens only."""

    def __init__(self, processor: Any, image_root: str | Path | None, encoder: PromptEncoder | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.is_vlm = hasattr(processor, "image_processor")
        self.encoder = encoder or PromptEncoder(processor, self.is_vlm)
        self.image_root = image_root
        self.eos = self.tokenizer.eos_token or ""

    def __call__(self, samples: list[Any]) -> dict[str, torch.Tensor]:
        images = [_images(s, self.image_root) if self.is_vlm else [] for s in samples]
        texts = [self.encoder.chat_text(_as_sample(s, imgs)) for s, imgs in zip(samples, images)]
        flat = [img for imgs in images for img in imgs]
        if self.is_vlm:
            enc = dict(self.processor(text=texts, images=flat or None, return_tensors="pt", padding=True))
        else:
            enc = dict(self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False))
        targets = [
            self.tokenizer(target_completion(s) + self.eos, add_special_tokens=False)["input_ids"] for s in samples
        ]
        width = max(len(t) for t in targets)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        tgt = torch.full((len(samples), width), pad, dtype=torch.long)
        tgt_mask = torch.zeros((len(samples), width), dtype=torch.long)
        for i, t in enumerate(targets):
            tgt[i, : len(t)] = torch.tensor(t)
            tgt_mask[i, : len(t)] = 1
        prompt_ids = enc.pop("input_ids")
        prompt_mask = enc.pop("attention_mask")
        labels = torch.cat([torch.full_like(prompt_ids, IGNORE), tgt.masked_fill(tgt_mask == 0, IGNORE)], dim=1)
        batch = {
            "input_ids": torch.cat([prompt_ids, tgt], 1),
            "attention_mask": torch.cat([prompt_mask, tgt_mask], 1),
            "labels": labels,
        }
        if "mm_token_type_ids" in enc:  # zeros (text) for the appended target tokens
            mm = enc.pop("mm_token_type_ids")
            batch["mm_token_type_ids"] = torch.cat([mm, torch.zeros_like(tgt)], 1)
        batch.update(enc)
        return batch


def completion_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the labelled (completion) tokens."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
    )


def supervised_warmup(
    model: torch.nn.Module,
    processor: Any,
    samples: list[Any],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    image_root: str | Path | None = None,
    weight_decay: float = 0.0,
    encoder: PromptEncoder | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Fine-tune `model` in place for `steps` AdamW steps (linear warm-up over the first 10%, then
    cosine decay) on target completions of `samples` (dicts or `Sample`s; relative image paths
    resolve against `image_root`). `encoder` builds the prompts; pass the rollout engine's so the
    warm-up teaches the prompts GRPO and evaluation use (None: the bare prompt in the chat
    template). `autocast` wraps each forward (the policy's mixed precision). Returns {"steps",
    "loss_first", "loss_final", "seconds"}, where loss_final is the mean of the last (up to) 10 steps."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    if steps and not samples:
        raise ValueError("samples is empty: the warm-up needs at least one sample")
    start = time.perf_counter()
    batcher = _Batcher(processor, image_root, encoder)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    ramp = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / ramp if s < ramp else 0.5 * (1 + math.cos(math.pi * (s - ramp) / max(1, steps - ramp)))
    )
    rng = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    for _ in range(steps):
        while len(order) < batch_size:  # epochs of a fresh shuffle
            fresh = list(range(len(samples)))
            rng.shuffle(fresh)
            order += fresh
        picked, order = order[:batch_size], order[batch_size:]
        batch = {k: v.to(device) for k, v in batcher([samples[i] for i in picked]).items()}
        with autocast():
            loss = completion_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.train(was_training)
    tail = losses[-10:]
    return {
        "steps": float(steps),
        "loss_first": losses[0] if losses else float("nan"),
        "loss_final": sum(tail) / len(tail) if tail else float("nan"),
        "seconds": time.perf_counter() - start,
    }
