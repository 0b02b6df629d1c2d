"""The built-in tiny policy of the embedded default run: a randomly initialised Qwen2-VL model
small enough to train on a CPU in minutes, with the code-built tokenizer of
`harmo_fast.trainer.tokenizer` and an image processor that turns a small image into a handful of
vision tokens. It behaves like a hub Qwen2-VL checkpoint (chat template, processor call,
`generate`, `save_pretrained`/`from_pretrained`), so the trainer has no special path for it."""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    AutoProcessor,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.processing_utils import ProcessorMixin

from harmo_fast.trainer.tokenizer import IM_END, IMAGE_PAD, PAD, VIDEO_PAD, VISION_END, VISION_START, build_tokenizer

# Defaults of the tiny model. `overrides` of the builders replace any of these keys.
TINY_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vision_embed_dim": 64,
    "vision_depth": 2,
    "vision_num_heads": 4,
    "image_size": 56,  # images are resized to image_size x image_size: (image_size/28)^2 vision tokens
}


class TinyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without the video processor, whose torchvision dependency a CPU install
    need not have. Everything else (image tokens, chat template, padding) is Qwen2VLProcessor's."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = IMAGE_PAD
        self.video_token = VIDEO_PAD
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.video_token_id = tokenizer.convert_tokens_to_ids(VIDEO_PAD)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)


class _TinyProcessorKey(PretrainedConfig):
    # AutoProcessor finds a processor class named in processor_config.json only among registered
    # ones; a private key keeps hub Qwen2-VL models on their own processor.
    model_type = "harmo_tiny_qwen2_vl_processor"


AutoProcessor.register(_TinyProcessorKey, TinyQwen2VLProcessor, exist_ok=True)


def _settings(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(TINY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown tiny-policy setting(s) {unknown}; valid: {sorted(TINY_DEFAULTS)}")
    s = {**TINY_DEFAULTS, **overrides}
    head_dim = s["hidden_size"] // s["num_attention_heads"]
    if head_dim * s["num_attention_heads"] != s["hidden_size"] or head_dim % 4:
        raise ValueError(
            f"hidden_size={s['hidden_size']} must split into num_attention_heads={s['num_attention_heads']} heads "
            "whose size is a multiple of 4"
        )
    if s["image_size"] % 28:
        raise ValueError(f"image_size={s['image_size']} must be a multiple of 28 (patch 14 x merge 2)")
    return s


def _mrope_section(head_dim: int) -> list[int]:
    # Qwen2-VL splits the rotary half of each head into (time, height, width) sections.
    half = head_dim // 2
    t = half // 4  # Qwen's own split is [16, 24, 24] of 64: a quarter for time, the rest halved
    rest = half - t
    return [t, rest // 2, rest - rest // 2]


def _text_kwargs(s: dict[str, Any], tok: PreTrainedTokenizerFast) -> dict[str, Any]:
    head_dim = s["hidden_size"] // s["num_attention_heads"]
    return {
        "vocab_size": len(tok),
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "num_hidden_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "max_position_embeddings": 1024,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(head_dim)},
        "bos_token_id": tok.convert_tokens_to_ids(PAD),
        "eos_token_id": tok.convert_tokens_to_ids(IM_END),
        "pad_token_id": tok.convert_tokens_to_ids(PAD),
        "tie_word_embeddings": True,
    }


def _finish(model: torch.nn.Module, tok: PreTrainedTokenizerFast) -> None:
    gen = model.generation_config
    gen.eos_token_id = tok.convert_tokens_to_ids(IM_END)
    gen.pad_token_id = tok.convert_tokens_to_ids(PAD)
    gen.bos_token_id = tok.convert_tokens_to_ids(PAD)
    model.eval()


def build_tiny_vlm(seed: int = 0, **overrides: Any) -> tuple[Qwen2VLForConditionalGeneration, TinyQwen2VLProcessor]:
    """A randomly initialised tiny Qwen2-VL model (seeded) and its processor.

    overrides: any key of TINY_DEFAULTS (e.g. hidden_size=64, image_size=84).
    """
    s = _settings(overrides)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END)}
    config = Qwen2VLConfig(
        text_config=_text_kwargs(s, tok),
        vision_config={
            "depth": s["vision_depth"],
            "embed_dim": s["vision_embed_dim"],
            "hidden_size": s["hidden_size"],
            "num_heads": s["vision_num_heads"],
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=True,
    )
    pixels = s["image_size"] * s["image_size"]
    image_processor = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels)
    processor = TinyQwen2VLProcessor(image_processor=image_processor, tokenizer=tok, chat_template=tok.chat_template)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    _finish(model, tok)
    return model, processor


def build_tiny_lm(seed: int = 0, **overrides: Any) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    """A randomly initialised tiny text-only Qwen2 model with the same tokenizer (for tests)."""
    s = _settings(overrides)
    tok = build_tokenizer()
    kwargs = _text_kwargs(s, tok)
    kwargs["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**kwargs))
    _finish(model, tok)
    return model, tok
