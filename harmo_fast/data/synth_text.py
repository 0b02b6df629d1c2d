"""The synthetic text task set for small pretrained language models: arithmetic and short word
problems whose answers are integers, in five graded levels of difficulty:

1. one-digit addition and subtraction ("What is 7 + 5?");
2. two-digit addition and subtraction;
3. one-digit multiplication;
4. one-step word problems (buying, giving away, equal groups);
5. three-number expressions with the usual precedence ("What is 3 + 4 * 2?").

Records follow docs/SPEC.md §4 (no images, task_type "math") and add `level` and `rationale` (the
worked calculation, which the supervised warm-up teaches as the `<think>` text). Train and held-out
splits are drawn from one seeded RNG and share no prompt, so held-out accuracy measures
generalisation rather than recall."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAMES = ("Ana", "Ben", "Carla", "Dev", "Emma", "Finn", "Gia", "Hugo", "Ivy", "Jon")
ITEMS = ("apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "shells")
CONTAINERS = ("box", "bag", "jar", "shelf", "basket")


def _add_sub(rng: random.Random, low: int, high: int) -> dict[str, Any]:
    a, b = rng.randint(low, high), rng.randint(low, high)
    if rng.random() < 0.5:
        return {"prompt": f"What is {a} + {b}?", "answer": a + b, "rationale": f"{a} + {b} = {a + b}"}
    a, b = max(a, b), min(a, b)  # non-negative differences: a small model's answers stay plain digits
    return {"prompt": f"What is {a} - {b}?", "answer": a - b, "rationale": f"{a} - {b} = {a - b}"}


def _level1(rng: random.Random) -> dict[str, Any]:
    return _add_sub(rng, 0, 9)


def _level2(rng: random.Random) -> dict[str, Any]:
    return _add_sub(rng, 10, 99)


def _level3(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return {"prompt": f"What is {a} * {b}?", "answer": a * b, "rationale": f"{a} * {b} = {a * b}"}


def _level4(rng: random.Random) -> dict[str, Any]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        prompt = f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?"
        return {"prompt": prompt, "answer": a + b, "rationale": f"{a} + {b} = {a + b}"}
    if kind == 1:
        a = rng.randint(5, 30)
        b = rng.randint(1, a - 1)
        prompt = f"{name} has {a} {item} and gives {b} away. How many {item} are left?"
        return {"prompt": prompt, "answer": a - b, "rationale": f"{a} - {b} = {a - b}"}
    a, b, box = rng.randint(2, 9), rng.randint(2, 9), rng.choice(CONTAINERS)
    prompt = f"Each {box} holds {a} {item}. How many {item} are in {b} {box}s?"
    return {"prompt": prompt, "answer": a * b, "rationale": f"{b} * {a} = {a * b}"}


def _level5(rng: random.Random) -> dict[str, Any]:
    a, b, c = rng.randint(1, 9), rng.randint(2, 9), rng.randint(2, 9)
    if rng.random() < 0.5:
        value = a + b * c
        return {
            "prompt": f"What is {a} + {b} * {c}?",
            "answer": value,
            "rationale": f"{b} * {c} = {b * c}, {a} + {b * c} = {value}",
        }
    value = b * c - a
    return {
        "prompt": f"What is {b} * {c} - {a}?",
        "answer": value,
        "rationale": f"{b} * {c} = {b * c}, {b * c} - {a} = {value}",
    }


# level -> generator of (prompt, integer answer, rationale)
LEVELS: dict[int, Callable[[random.Random], dict[str, Any]]] = {
    1: _level1,
    2: _level2,
    3: _level3,
    4: _level4,
    5: _level5,
}


def make_text_sample(rng: random.Random, level: int, instruction: str = "") -> dict[str, Any]:
    """One record's fields (without id) of difficulty `level`; `instruction` is appended to the prompt."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(map(str, LEVELS))}")
    sample = LEVELS[level](rng)
    return {
        "prompt": sample["prompt"] + instruction,
        "images": [],
        "answer": str(sample["answer"]),
        "task_type": "math",
        "level": level,
        "rationale": sample["rationale"],
    }


def write_text_synth(
    out_dir: str | Path,
    n_train: int = 2000,
    n_test: int = 256,
    seed: int = 0,
    levels: dict[int, float] | None = None,
    instruction: str = "",
) -> dict[str, Path]:
    """Write `train.jsonl` and `test.jsonl` under out_dir; returns their paths ({"train", "test"}).
    levels: share of each level's draws (normalised; default equal shares). A prompt never appears in
    both splits: the held-out split is drawn first and training draws skip its prompts, so levels with
    few distinct prompts (1 and 3) end up with a smaller share of the training split."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    weights = dict.fromkeys(LEVELS, 1.0) if levels is None else dict(levels)
    unknown = sorted(set(weights) - set(LEVELS))
    if unknown or not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values()):
        raise ValueError(f"levels must weight some of {sorted(LEVELS)} positively (none negative), got {weights}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names, probs = list(weights), [weights[k] for k in weights]
    paths = {"train": out / "train.jsonl", "test": out / "test.jsonl"}
    held_out: set[str] = set()
    for split, n in (("test", n_test), ("train", n_train)):
        with open(paths[split], "w") as f:
            for i in range(n):
                for _ in range(1000):
                    record = make_text_sample(rng, rng.choices(names, probs)[0], instruction)
                    if split == "test" or record["prompt"] not in held_out:
                        break
                else:
                    raise ValueError(f"could not draw a training prompt outside the {n_test} held-out ones")
                if split == "test":
                    held_out.add(record["prompt"])
                f.write(json.dumps({"id": f"{split}-{i:05d}", **record}) + "\n")
    return paths
