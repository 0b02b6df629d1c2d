"""Rollout: G sampled completions per prompt. `RolloutEngine` is the interface (the engines by
name: trainer/engines.py); `HFRolloutEngine` runs Hugging Face `generate`, sampling each prompt
group from its own seeded generator (trainer/group_sampling.py)."""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harmo_fast.data.jsonl import Sample
from harmo_fast.rewards.types import RewardSample
from harmo_fast.trainer.distributed import is_sharded
from harmo_fast.trainer.group_sampling import GroupSampler
from harmo_fast.trainer.logprobs import SharedPromptInputs, cache_key, prompt_positions, shares_prompts
from harmo_fast.trainer.prompts import PromptEncoder

TEXT_TYPE_IDS = ("mm_token_type_ids", "token_type_ids")
MEDIA_TOKEN_ATTRS = (
    "image_token_id",
    "video_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "image_token_index",
    "video_token_index",
)


@dataclass
class RolloutBatch:
    """N = prompts x G responses. Row i answers `samples[i]`; rows of one prompt share `group_ids[i]`.

    prompt: left-padded prompt tensors, one row per response (vision tensors included).
    completion_ids / completion_mask: (N, T), the mask covers the tokens up to and including EOS.
    """

    samples: list[Sample]
    group_ids: torch.Tensor
    prompt: dict[str, torch.Tensor]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    lengths: torch.Tensor
    truncated: torch.Tensor
    texts: list[str]
    image_counts: torch.Tensor | None = None  # images per row, for splitting flattened patches

    @property
    def size(self) -> int:
        return self.completion_ids.shape[0]

    def model_inputs(self, rows: list[int], width: int) -> dict[str, torch.Tensor]:
        """Inputs of a forward pass over prompt + the first `width` completion columns of `rows`;
        prompt columns that are padding in every selected row are dropped."""
        prompt = select_rows(self.prompt, rows, self.size, self.image_counts)
        keep = prompt["attention_mask"].any(dim=0).nonzero()
        first = int(keep[0]) if len(keep) else 0
        ids = self.completion_ids[rows, :width]
        inputs = dict(prompt)
        inputs["input_ids"] = torch.cat([prompt["input_ids"][:, first:], ids], dim=1)
        mask = self.completion_mask[rows, :width].to(prompt["attention_mask"].dtype)
        inputs["attention_mask"] = torch.cat([prompt["attention_mask"][:, first:], mask], dim=1)
        for key in TEXT_TYPE_IDS:  # per-token type ids: completion tokens are text (0)
            if key in prompt:
                inputs[key] = torch.cat([prompt[key][:, first:], torch.zeros_like(ids)], dim=1)
        return inputs

    def shared_inputs(self, rows: list[int], width: int) -> SharedPromptInputs:
        """The inputs of `rows` (text-only prompts) with each distinct prompt once, over the first
        `width` completion columns; prompt columns that are padding in every distinct prompt are dropped."""
        slot: dict[int, int] = {}
        firsts, index = [], []
        for row, group in zip(rows, self.group_ids[rows].tolist()):
            if group not in slot:
                slot[group] = len(firsts)
                firsts.append(row)
            index.append(slot[group])
        ids, mask = self.prompt["input_ids"][firsts], self.prompt["attention_mask"][firsts]
        keep = mask.any(dim=0).nonzero()
        first = int(keep[0]) if len(keep) else 0
        return SharedPromptInputs(
            prompt_ids=ids[:, first:],
            prompt_mask=mask[:, first:],
            index=torch.tensor(index, device=ids.device),
            completion_ids=self.completion_ids[rows, :width],
            completion_mask=self.completion_mask[rows, :width],
        )


def _ranges(offsets: torch.Tensor, counts: torch.Tensor, which: list[int]) -> torch.Tensor:
    """Concatenated index ranges [offsets[i], offsets[i] + counts[i]) for i in `which`."""
    parts = [torch.arange(int(offsets[i]), int(offsets[i] + counts[i])) for i in which]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def select_rows(
    tensors: dict[str, torch.Tensor], rows: list[int], n: int, image_counts: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """A row subset of processor outputs. Per-row tensors are indexed; Qwen-VL style flattened
    image patches (`pixel_values` with `image_grid_thw`) are gathered by the images of those rows."""
    if rows == list(range(n)):
        return tensors
    index = torch.tensor(rows, dtype=torch.long)
    out = {}
    grid = tensors.get("image_grid_thw")
    for key, value in tensors.items():
        if grid is not None and key in ("pixel_values", "image_grid_thw"):
            continue
        if value.shape[0] != n:
            raise ValueError(f"cannot split the model input {key!r} (shape {tuple(value.shape)}) into rows of {n}")
        out[key] = value[index.to(value.device)]
    if grid is not None:
        if image_counts is None:
            raise ValueError("splitting flattened image patches into rows needs the number of images per row")
        counts = image_counts.cpu()
        images = _ranges(torch.cumsum(counts, 0) - counts, counts, rows).tolist()
        patches = grid.prod(dim=1).cpu()
        patch_index = _ranges(torch.cumsum(patches, 0) - patches, patches, images)
        out["image_grid_thw"] = grid[torch.tensor(images, dtype=torch.long, device=grid.device)]
        out["pixel_values"] = tensors["pixel_values"][patch_index.to(grid.device)]
    return out


class RolloutEngine(abc.ABC):
    """Produces completions for prompts with the current policy weights."""

    @abc.abstractmethod
    def generate(
        self, samples: list[Sample], num_generations: int, *, greedy: bool = False, max_new_tokens: int | None = None
    ) -> RolloutBatch:
        """`num_generations` completions for each sample, grouped contiguously."""

    encode_seconds: float = 0.0  # time the last generate() spent building prompt tensors (data work)

    def sync_weights(self) -> None:  # noqa: B027 (a no-op default: engines sharing the policy need nothing)
        """Called after each optimizer step; engines holding their own weight copy reload them."""

    def close(self) -> None:  # noqa: B027 (a no-op default: engines without processes or files of their own)
        """Release what the engine started (worker processes, temporary files)."""

    def set_group_seeds(self, seeds: list[int] | None) -> None:  # noqa: B027 (a no-op default, like sync_weights)
        """Seeds of the next sampling generate()'s prompt groups, one per sample, so that a group's
        completions do not depend on the batch or rank that generates it; engines that cannot
        seed per group ignore them."""


class HFRolloutEngine(RolloutEngine):
    """Sampling with `model.generate` under `torch.no_grad`, in eval mode. Each prompt group
    samples from its own generator (`set_group_seeds`; without seeds, drawn from torch's global
    generator). With sharded (FSDP) weights every rank keeps running forward passes until all ranks
    are done, as the gathers inside them are collective."""

    def __init__(
        self,
        model: Any,
        encoder: PromptEncoder,
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        device: torch.device | str = "cpu",
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ):
        self.model = model
        self.autocast = autocast
        self.encoder = encoder
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.device = torch.device(device)
        tok = encoder.tokenizer
        self.eos_ids = eos_token_ids(model, tok)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]
        config = getattr(model, "config", None)
        # A sampled image placeholder would make the next forward pass expect image features.
        self.suppress_ids = sorted({i for a in MEDIA_TOKEN_ATTRS if isinstance(i := getattr(config, a, None), int)})
        self.group_seeds: list[int] | None = None

    def set_group_seeds(self, seeds: list[int] | None) -> None:
        self.group_seeds = seeds

    def _generation_config(self, max_new_tokens: int) -> Any:
        from transformers import GenerationConfig

        # A fresh config: hub models ship sampling defaults (top_k, repetition penalty) we must not inherit.
        # Always greedy: sampling happens in GroupSampler, which leaves one finite score per row.
        return GenerationConfig(
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            use_cache=True,
            suppress_tokens=self.suppress_ids or None,
        )

    def _sampler(self, num_prompts: int) -> GroupSampler:
        seeds = self.group_seeds
        self.group_seeds = None  # seeds are for one batch
        if seeds is None:
            seeds = torch.randint(0, 2**62, (num_prompts,)).tolist()
        if len(seeds) != num_prompts:
            raise ValueError(f"set_group_seeds: {len(seeds)} seeds for {num_prompts} prompts")
        return GroupSampler(seeds, self.temperature, self.top_k, self.top_p)

    def _prefill(self, prompt: dict[str, torch.Tensor], num_generations: int) -> Any:
        """The KV cache of each text prompt but its last token, computed once and repeated for its
        G rows: `generate` then runs only the last prompt token and the new ones (the G rows of a
        group would otherwise each encode the same prompt). Run in generate's eval mode, no_grad
        and autocast."""
        ids, mask = prompt["input_ids"][:, :-1].to(self.device), prompt["attention_mask"][:, :-1].to(self.device)
        if ids.shape[1] == 0:
            return None
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=prompt_positions(mask), use_cache=True, logits_to_keep=1
        )
        cache = getattr(out, cache_key())
        cache.batch_repeat_interleave(num_generations)
        return cache

    def generate(
        self, samples: list[Sample], num_generations: int, *, greedy: bool = False, max_new_tokens: int | None = None
    ) -> RolloutBatch:
        t0 = time.perf_counter()
        rows = [s for s in samples for _ in range(num_generations)]
        # Encode each prompt (and its images) once, then repeat the tensors for its G rows.
        prompt = self.encoder.encode(samples)
        image_counts = torch.tensor([len(s.images) for s in samples]) if "image_grid_thw" in prompt else None
        sharded = is_sharded(self.model)
        distinct = prompt if num_generations > 1 else None  # prefilled once, not per row, where shares_prompts allows
        if num_generations > 1:
            repeat = [i for i in range(len(samples)) for _ in range(num_generations)]
            prompt = select_rows(prompt, repeat, len(samples), image_counts)
            image_counts = None if image_counts is None else image_counts.repeat_interleave(num_generations)
        prompt = {k: v.to(self.device) for k, v in prompt.items()}
        self.encode_seconds = time.perf_counter() - t0
        width = prompt["input_ids"].shape[1]
        processors = [] if greedy else [self._sampler(len(samples))]
        # no_grad, not inference_mode: FSDP reuses its gather buffers in training (they must not become
        # inference tensors), and autocast caches its weight casts for a whole generate only outside it.
        no_grad = torch.no_grad()
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad, self.autocast():
                shared = distinct is not None and shares_prompts(self.model, distinct)
                cache = self._prefill(distinct, num_generations) if shared else None
                out = self.model.generate(
                    **prompt,
                    generation_config=self._generation_config(max_new_tokens or self.max_new_tokens),
                    logits_processor=processors,
                    synced_gpus=sharded,
                    **({} if cache is None else {cache_key(): cache}),
                )
        finally:
            self.model.train(was_training)
        completion = out[:, width:].clone()  # a normal tensor: inference tensors cannot enter autograd
        mask, lengths, truncated = completion_mask(completion, self.eos_ids)
        completion = completion.masked_fill(~mask, self.pad_id)
        tok = self.encoder.tokenizer
        texts = tok.batch_decode(
            [ids[:n] for ids, n in zip(completion.tolist(), lengths.tolist())], skip_special_tokens=True
        )
        group_ids = torch.arange(len(samples), device=self.device).repeat_interleave(num_generations)
        return RolloutBatch(rows, group_ids, prompt, completion, mask, lengths, truncated, texts, image_counts)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end a completion: the model's generation_config EOS ids and the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    if not eos_ids:
        raise ValueError("the tokenizer and the model's generation_config define no EOS token")
    return sorted(eos_ids)


def completion_mask(ids: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mask up to and including the first EOS, lengths, truncated = no EOS within the budget)."""
    is_eos = torch.isin(ids, torch.tensor(eos_ids, device=ids.device))
    has_eos = is_eos.any(dim=1)
    first = torch.where(
        has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, ids.shape[1], dtype=torch.long) - 1
    )
    mask = torch.arange(ids.shape[1], device=ids.device)[None, :] <= first[:, None]
    return mask, mask.sum(dim=1), ~has_eos


def reward_samples(batch: RolloutBatch) -> list[RewardSample]:
    """The reward pipeline's view of a batch's completions."""
    return [
        RewardSample(
            completion=text,
            answer=s.answer,
            task_type=s.task_type,
            group_id=int(g),
            length=int(n),
            prompt=s.prompt,
            reference=s.reference,
            choices=s.choices,
        )
        for s, text, g, n in zip(batch.samples, batch.texts, batch.group_ids.tolist(), batch.lengths.tolist())
    ]
