"""The synthetic multimodal task set of the embedded default run: small PIL-rendered images with
questions whose answers our rule verifiers check. Shapes sit one per 28-pixel cell (one vision
token of the tiny policy each) and digits are large, so a small model can learn to see them in
minutes. Five kinds of question:

- counting: how many shapes are in the picture;
- numeric: read the rendered digit;
- math: add or subtract the two rendered digits;
- multiple_choice: the colour of a shape, or which side it is on, with lettered options;
- yes_no: is there a shape of a given colour.

The options of a multiple-choice question come in a fixed order (a colour always has the same
letter), and no question binds two attributes of one shape: each answer is a plain function of
per-cell visual features, which a 2-layer policy trained for minutes can learn (shuffled letters
and colour-and-kind binding are beyond a policy that small).

Each record follows docs/SPEC.md §4 and adds `rationale`, a short template reasoning that the
supervised warm-up uses as the `<think>` text. Everything is drawn from one seeded RNG, so a seed
gives the same files on every machine."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

COLORS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 190, 20)}
KINDS = ("circle", "square", "triangle")
LETTERS = "ABCD"
INSTRUCTION = " first think inside <think> </think> then give the final answer inside <answer> </answer>."

# Share of each question family in a split (normalised). The families map to the task types of docs/SPEC.md §1.
DEFAULT_MIX = {"counting": 1.0, "numeric": 1.0, "math": 1.0, "mc_color": 1.0, "mc_side": 0.5, "yes_no": 1.0}

Box = tuple[int, int, int, int]


def _cells(rng: random.Random, n: int, size: int, scale: float = 0.6) -> list[Box]:
    """n shapes' boxes, each inside its own cell of the image's grid of 28-pixel cells (one merged
    vision token of the tiny policy per cell), with a random offset inside the cell."""
    grid = max(1, size // 28)
    cell = size // grid
    side = max(6, int(cell * scale))
    boxes = []
    for index in rng.sample(range(grid * grid), n):
        cx, cy = (index % grid) * cell, (index // grid) * cell
        x, y = cx + rng.randint(1, cell - side - 1), cy + rng.randint(1, cell - side - 1)
        boxes.append((x, y, x + side, y + side))
    return boxes


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, color: str, box: Box) -> None:
    fill = COLORS[color]
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    return img, ImageDraw.Draw(img)


def _max_shapes(size: int) -> int:
    return min(4, max(1, size // 28) ** 2)


def _counting(rng: random.Random, size: int) -> dict[str, Any]:
    n = rng.randint(1, _max_shapes(size))
    img, draw = _canvas(size)
    kinds = [rng.choice(KINDS) for _ in range(n)]
    for kind, box in zip(kinds, _cells(rng, n, size)):
        _draw_shape(draw, kind, rng.choice(list(COLORS)), box)
    return {
        "image": img,
        "prompt": "how many shapes are there?",
        "answer": str(n),
        "task_type": "counting",
        "rationale": f"i count {n} shapes",
    }


def _digit_image(rng: random.Random, size: int, digits: list[int]) -> Image.Image:
    """Each digit large in its own vertical band of the image, slightly jittered."""
    img, draw = _canvas(size)
    band = size // len(digits)
    font = ImageFont.load_default(size=max(10, min(band, size * 2 // 3)))
    for i, d in enumerate(digits):
        left, top, right, bottom = draw.textbbox((0, 0), str(d), font=font)
        w, h = right - left, bottom - top
        x = i * band + max(0, (band - w) // 2 + rng.randint(-2, 2)) - left
        y = max(0, (size - h) // 2 + rng.randint(-3, 3)) - top
        draw.text((x, y), str(d), fill=(20, 20, 20), font=font)
    return img


def _numeric(rng: random.Random, size: int) -> dict[str, Any]:
    n = rng.randint(0, 9)
    return {
        "image": _digit_image(rng, size, [n]),
        "prompt": "what number is shown?",
        "answer": str(n),
        "task_type": "numeric",
        "rationale": f"the number reads {n}",
    }


def _math(rng: random.Random, size: int) -> dict[str, Any]:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    if rng.random() < 0.5:
        prompt, expr, value = "what is the sum of the two numbers?", f"{a}+{b}", a + b
    else:
        prompt, expr, value = "what is the left number minus the right number?", f"{a}-{b}", a - b
    return {
        "image": _digit_image(rng, size, [a, b]),
        "prompt": prompt,
        "answer": str(value),
        "task_type": "math",
        "rationale": f"the numbers are {a} and {b} so {expr} equals {value}",
    }


def _options(names: list[str]) -> str:
    return " ".join(f"{LETTERS[i]}. {name}" for i, name in enumerate(names)) + "."


def _mc_color(rng: random.Random, size: int) -> dict[str, Any]:
    kind = rng.choice(KINDS)
    color = rng.choice(list(COLORS))
    img, draw = _canvas(size)
    side = size // 2
    x, y = rng.randint(1, size - side - 1), rng.randint(1, size - side - 1)
    _draw_shape(draw, kind, color, (x, y, x + side, y + side))
    choices = list(COLORS)
    letter = LETTERS[choices.index(color)]
    return {
        "image": img,
        "prompt": f"what color is the {kind}? {_options(choices)}",
        "answer": letter,
        "choices": choices,
        "task_type": "multiple_choice",
        "rationale": f"the {kind} is {color} which is option {letter}",
    }


def _mc_side(rng: random.Random, size: int) -> dict[str, Any]:
    kind = rng.choice(KINDS)
    (box,) = _cells(rng, 1, size)
    img, draw = _canvas(size)
    _draw_shape(draw, kind, rng.choice(list(COLORS)), box)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if rng.random() < 0.5:
        pair, side = ["left", "right"], "left" if cx < size / 2 else "right"
    else:
        pair, side = ["top", "bottom"], "top" if cy < size / 2 else "bottom"
    letter = LETTERS[pair.index(side)]
    return {
        "image": img,
        "prompt": f"where is the {kind}? {_options(pair)}",
        "answer": letter,
        "choices": pair,
        "task_type": "multiple_choice",
        "rationale": f"the {kind} is on the {side} which is option {letter}",
    }


def _yes_no(rng: random.Random, size: int) -> dict[str, Any]:
    n = rng.randint(1, min(3, _max_shapes(size)))
    colors = [rng.choice(list(COLORS)) for _ in range(n)]
    img, draw = _canvas(size)
    for color, box in zip(colors, _cells(rng, n, size)):
        _draw_shape(draw, rng.choice(KINDS), color, box)
    # Half the questions ask about a colour that is there, half about one that is not.
    color = rng.choice(colors) if rng.random() < 0.5 else rng.choice([c for c in COLORS if c not in colors])
    present = color in colors
    return {
        "image": img,
        "prompt": f"is there a {color} shape?",
        "answer": "yes" if present else "no",
        "task_type": "yes_no",
        "rationale": f"i see a {color} shape" if present else f"i see no {color} shape",
    }


FAMILIES: dict[str, Callable[[random.Random, int], dict[str, Any]]] = {
    "counting": _counting,
    "numeric": _numeric,
    "math": _math,
    "mc_color": _mc_color,
    "mc_side": _mc_side,
    "yes_no": _yes_no,
}


_KIND = "(" + "|".join(KINDS) + ")"
# Prompt pattern -> rationale builder (answer, choices, match groups); math has none, because its
# reasoning names the digits in the image, which neither the prompt nor the answer holds.
_REASONS: list[tuple[re.Pattern[str], Callable[..., str]]] = [
    (re.compile(r"^how many shapes are there\?"), lambda a, c, g: f"i count {a} shapes"),
    (re.compile(r"^what number is shown\?"), lambda a, c, g: f"the number reads {a}"),
    (
        re.compile(rf"^what color is the {_KIND}\?"),
        lambda a, c, g: f"the {g[0]} is {c[LETTERS.index(a)]} which is option {a}",
    ),
    (
        re.compile(rf"^where is the {_KIND}\?"),
        lambda a, c, g: f"the {g[0]} is on the {c[LETTERS.index(a)]} which is option {a}",
    ),
    (re.compile(r"^is there a (\w+) shape\?"), lambda a, c, g: f"i see {'a' if a == 'yes' else 'no'} {g[0]} shape"),
]


def rationale_for(prompt: str, answer: str, choices: list[str] | None = None) -> str | None:
    """The template rationale of a synthetic question, rebuilt from its prompt and answer (for
    loaders that keep only the docs/SPEC.md fields); None for math and for prompts not made here."""
    for pattern, build in _REASONS:
        m = pattern.match(prompt)
        if m:
            try:
                return build(answer, choices, m.groups())
            except (TypeError, ValueError, IndexError):
                return None
    return None


def make_sample(rng: random.Random, family: str, image_size: int = 56, instruction: bool = False) -> dict[str, Any]:
    """One sample of a question family: the PIL image and the record fields (without id/images).
    instruction: append the answer-format instruction to the prompt (for pretrained models; the
    tiny policy learns the format in the warm-up, and a shorter prompt trains faster)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    sample = FAMILIES[family](rng, image_size)
    if instruction:
        sample["prompt"] += INSTRUCTION
    return sample


def write_synth(
    out_dir: str | Path,
    n_train: int = 512,
    n_test: int = 128,
    seed: int = 0,
    image_size: int = 56,
    mix: dict[str, float] | None = None,
    instruction: bool = False,
) -> dict[str, Path]:
    """Write `train.jsonl`, `test.jsonl` and `images/*.png` under out_dir; returns their paths
    ({"train", "test", "images"}). Image paths in the JSONL are relative to out_dir."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    if image_size < 28:
        raise ValueError(f"image_size must be at least 28 pixels, got {image_size}")
    weights = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(weights) - set(FAMILIES))
    if unknown or not any(w > 0 for w in weights.values()):
        raise ValueError(f"mix must weight some of {', '.join(FAMILIES)} positively, got {weights}")
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names, probs = list(weights), [weights[k] for k in weights]
    paths = {"train": out / "train.jsonl", "test": out / "test.jsonl", "images": images}
    for split, n in (("train", n_train), ("test", n_test)):
        with open(paths[split], "w") as f:
            for i in range(n):
                family = rng.choices(names, probs)[0]
                sample = make_sample(rng, family, image_size, instruction)
                sid = f"{split}-{i:05d}"
                sample.pop("image").save(images / f"{sid}.png")
                record = {"id": sid, "prompt": sample.pop("prompt"), "images": [f"images/{sid}.png"], **sample}
                f.write(json.dumps(record) + "\n")
    return paths
