"""Samples -> model inputs: the chat template (with image slots for a vision-language processor),
left padding for generation, images loaded once and cached."""

from __future__ import annotations

import functools
from typing import Any

import torch
from PIL import Image

from harmo_fast.data.jsonl import Sample


@functools.lru_cache(maxsize=4096)
def _load_image(path: str) -> Any:
    with Image.open(path) as img:
        return img.convert("RGB")


def image_of(item: Any) -> Any:
    return _load_image(item) if isinstance(item, str) else item.convert("RGB")


class PromptEncoder:
    """Turns samples into the tensors `generate` and the forward pass take.

    processor: a Hugging Face processor (vision-language) or tokenizer (text-only).
    template: a format string with `{prompt}` (and optionally `{choices}`) applied to each prompt.
    """

    def __init__(self, processor: Any, is_vlm: bool, template: str = "{prompt}", system_prompt: str | None = None):
        self.processor = processor
        self.is_vlm = is_vlm
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"  # completions must start at the same column
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.template = template
        self.system_prompt = system_prompt

    def user_text(self, sample: Sample) -> str:
        choices = "\n".join(sample.choices) if sample.choices else ""
        return self.template.format(prompt=sample.prompt, choices=choices)

    def chat_text(self, sample: Sample) -> str:
        """The full prompt string, generation prompt included."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append(
                {
                    "role": "system",
                    "content": self.system_prompt
                    if not self.is_vlm
                    else [{"type": "text", "text": self.system_prompt}],
                }
            )
        if self.is_vlm:
            content = [{"type": "image"} for _ in sample.images] + [{"type": "text", "text": self.user_text(sample)}]
            messages.append({"role": "user", "content": content})
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        messages.append({"role": "user", "content": self.user_text(sample)})
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n".join(m["content"] for m in messages) + "\n"

    def encode(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        """Left-padded prompt tensors (input_ids, attention_mask and, for images, pixel_values etc.)."""
        texts = [self.chat_text(s) for s in samples]
        if self.is_vlm:
            images = [image_of(img) for s in samples for img in s.images]
            out = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        else:
            out = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return dict(out)
