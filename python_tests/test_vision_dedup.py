"""Encoding each of G repeated images once gives the same vision features, logits and gradients as
encoding every copy, for the Qwen2-VL and Qwen2.5-VL towers."""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image

from harmo_fast.trainer.policy import vision_tower
from harmo_fast.trainer.tiny_policy import build_tiny_vlm
from harmo_fast.trainer.tokenizer import IMAGE_PAD, VISION_END, VISION_START
from harmo_fast.trainer.vision_dedup import dedup_repeated_images

torch.set_num_threads(1)
TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=1, vision_embed_dim=32, vision_depth=2, vision_num_heads=2
)


def _tiny_qwen2_5_vl() -> torch.nn.Module:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=64,
        window_size=28,
        fullatt_block_indexes=[1],
    )
    text = dict(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
    )
    cfg = Qwen2_5_VLConfig(
        vision_config=vision, text_config=text, image_token_id=290, video_token_id=291, vision_start_token_id=292
    )
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


def _images(n_distinct: int, copies: int, size: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen-VL pixel patches and grid of `n_distinct` random images, each repeated `copies` times
    in a row (as GRPO lays out a prompt's G responses)."""
    _, processor = build_tiny_vlm(seed=0, **TINY)
    gen = torch.Generator().manual_seed(1)
    images = [
        Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8).numpy())
        for _ in range(n_distinct)
    ]
    out = processor.image_processor(images=[im for im in images for _ in range(copies)], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


def _count_patches(tower: torch.nn.Module) -> list[int]:
    seen: list[int] = []
    tower.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0].shape[0]), with_kwargs=True)
    return seen


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_repeated_images_are_encoded_once_with_the_same_features(family: str) -> None:
    model = build_tiny_vlm(seed=0, **TINY)[0].eval() if family == "qwen2_vl" else _tiny_qwen2_5_vl()
    plain = copy.deepcopy(model)
    tower = vision_tower(model)
    assert dedup_repeated_images(tower)
    pixels, grid = _images(n_distinct=3, copies=4)
    seen = _count_patches(tower)
    with torch.no_grad():
        got = model.model.get_image_features(pixels, grid)
        want = plain.model.get_image_features(pixels, grid)
    assert seen == [pixels.shape[0] // 4]  # this hook runs after the dedup hook: it sees 3 images
    assert len(got.pooler_output) == len(want.pooler_output) == 12
    for g, w in zip(got.pooler_output, want.pooler_output):
        assert torch.equal(g, w)
    assert torch.equal(got.last_hidden_state, want.last_hidden_state)


def test_the_tower_sees_only_the_distinct_images() -> None:
    model = build_tiny_vlm(seed=0, **TINY)[0].eval()
    tower = vision_tower(model)
    dedup_repeated_images(tower)
    inner = _count_patches(tower.patch_embed)  # what reaches the tower's own layers
    pixels, grid = _images(n_distinct=3, copies=4)
    with torch.no_grad():
        model.model.get_image_features(pixels, grid)
        distinct, _ = _images(n_distinct=3, copies=1)
        model.model.get_image_features(distinct, grid[::4].contiguous())
    assert inner == [pixels.shape[0] // 4, pixels.shape[0] // 4]


def test_logits_and_gradients_match_encoding_every_copy() -> None:
    model, processor = build_tiny_vlm(seed=0, **TINY)
    plain = copy.deepcopy(model)
    dedup_repeated_images(vision_tower(model))
    gen = torch.Generator().manual_seed(2)
    images = [
        Image.fromarray(torch.randint(0, 256, (56, 56, 3), generator=gen, dtype=torch.uint8).numpy()) for _ in range(2)
    ]
    text = f"{VISION_START}{IMAGE_PAD}{VISION_END}how many shapes?"
    inputs = processor(text=[text] * 6, images=[im for im in images for _ in range(3)], return_tensors="pt")
    results = []
    for m in (model, plain):
        m.train()
        logits = m(**inputs).logits
        logits.float().square().mean().backward()
        results.append(
            (logits.detach(), {n: p.grad for n, p in m.named_parameters() if "visual" in n and p.grad is not None})
        )
    (l1, g1), (l2, g2) = results
    assert torch.equal(l1, l2)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for name in g1:  # the copies' gradients are summed in another order: equal up to rounding
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-4, atol=1e-6, msg=name)


def test_distinct_images_and_other_towers_pass_through() -> None:
    model = build_tiny_vlm(seed=0, **TINY)[0].eval()
    tower = vision_tower(model)
    dedup_repeated_images(tower)
    seen = _count_patches(tower.patch_embed)
    pixels, grid = _images(n_distinct=4, copies=1)
    with torch.no_grad():
        model.model.get_image_features(pixels, grid)
    assert seen == [pixels.shape[0]]
    assert not dedup_repeated_images(torch.nn.Linear(2, 2))
    assert not dedup_repeated_images(None)
