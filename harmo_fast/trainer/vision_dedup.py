"""Encode each distinct image once. GRPO repeats every prompt's images for its G responses, and a
Qwen-VL vision tower encodes the images of a batch independently of each other, so the tower can
run on the first image of each run of identical consecutive images and its output rows be
repeated for the copies. The result is the same rows, bit for bit (the tower's output for an
image does not depend on the other images of the batch; python_tests/test_vision_dedup.py checks
it), with 1/G of the vision work in the rollout's prefill and the update's forward passes.

Installed as forward hooks, so the module tree and state-dict keys stay as they are."""

from __future__ import annotations

from typing import Any

import torch

# Towers known to encode images independently (per-image attention windows, rows in image order).
DEDUP_TOWERS = ("Qwen2VisionTransformerPretrainedModel", "Qwen2_5_VisionTransformerPretrainedModel")


class ImageDedup:
    """The hook pair: `before` drops repeated images from the tower's input, `after` repeats the
    kept images' output rows. `plan` holds (patch count of each kept image, copies of each)."""

    def __init__(self) -> None:
        self.plan: tuple[list[int], list[int]] | None = None

    def before(
        self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[tuple, dict[str, Any]] | None:
        self.plan = None
        grid = kwargs.get("grid_thw")
        if len(args) != 1 or not isinstance(grid, torch.Tensor) or grid.ndim != 2:
            return None
        if any(isinstance(v, torch.Tensor) for k, v in kwargs.items() if k != "grid_thw"):
            return None  # precomputed per-image inputs (position ids, seqlens) would no longer match
        sizes = grid.prod(-1).tolist()
        pixels = args[0]
        if len(sizes) < 2 or sum(sizes) != pixels.shape[0]:
            return None
        segments = pixels.split(sizes)
        kept, copies = [0], [1]
        for i in range(1, len(sizes)):
            if torch.equal(grid[i], grid[kept[-1]]) and torch.equal(segments[i], segments[kept[-1]]):
                copies[-1] += 1
            else:
                kept.append(i)
                copies.append(1)
        if len(kept) == len(sizes):
            return None
        self.plan = ([sizes[i] for i in kept], copies)
        return (torch.cat([segments[i] for i in kept]),), {**kwargs, "grid_thw": grid[kept]}

    def after(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        if self.plan is None:
            return None
        plan, self.plan = self.plan, None
        if isinstance(output, torch.Tensor):
            return _repeat_rows(output, *plan)
        if isinstance(output, tuple):
            return tuple(_repeat_rows(t, *plan) if isinstance(t, torch.Tensor) else t for t in output)
        for key, value in list(output.items()):  # a transformers ModelOutput
            if isinstance(value, torch.Tensor):
                output[key] = _repeat_rows(value, *plan)
        return output


def _repeat_rows(t: torch.Tensor, sizes: list[int], copies: list[int]) -> torch.Tensor:
    """Rows of `t` are the kept images' in order, `sizes[j] / k` rows each for one k (k = 1: patches,
    k = merge^2: merged tokens); repeat image j's rows `copies[j]` times."""
    total = sum(sizes)
    k = total // t.shape[0] if t.shape[0] else 0
    if k == 0 or k * t.shape[0] != total or any(s % k for s in sizes):
        raise RuntimeError(
            f"vision dedup: an output of {t.shape[0]} rows does not split over images of {sizes} patches"
        )
    index, start = [], 0
    for size, n in zip(sizes, copies):
        rows = torch.arange(start, start + size // k)
        index.extend([rows] * n)
        start += size // k
    return t.index_select(0, torch.cat(index).to(t.device))


def dedup_repeated_images(tower: torch.nn.Module | None) -> bool:
    """Install the hooks on `tower` if it is one of DEDUP_TOWERS; returns whether it did."""
    if tower is None or type(tower).__name__ not in DEDUP_TOWERS:
        return False
    dedup = ImageDedup()
    tower.register_forward_pre_hook(dedup.before, with_kwargs=True)
    tower.register_forward_hook(dedup.after, with_kwargs=True)
    return True
