"""The synthetic multimodal task set: valid docs/SPEC.md §4 records, images that show what the
answer says, answers our verifiers accept (and wrong answers they reject), determinism, the CLI."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from harmo_fast.data.synth import COLORS, FAMILIES, make_sample, rationale_for, write_synth
from harmo_fast.rewards import verify
from harmo_fast.rewards.types import TASK_TYPES


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    paths = write_synth(out, n_train=120, n_test=40, seed=3)
    return out, paths


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _components(img: Image.Image) -> list[tuple[int, int, int]]:
    """Colour of each 4-connected blob of non-white pixels (one blob per drawn shape)."""
    px = img.load()
    w, h = img.size
    seen = set()
    blobs = []
    for x in range(w):
        for y in range(h):
            if (x, y) in seen or px[x, y] == (255, 255, 255):
                continue
            stack, colors = [(x, y)], Counter()
            seen.add((x, y))
            while stack:
                cx, cy = stack.pop()
                colors[px[cx, cy]] += 1
                for nx, ny in ((cx + 1, cy), (cx - 1, cy), (cx, cy + 1), (cx, cy - 1)):
                    if 0 <= nx < w and 0 <= ny < h and (nx, ny) not in seen and px[nx, ny] != (255, 255, 255):
                        seen.add((nx, ny))
                        stack.append((nx, ny))
            blobs.append(colors.most_common(1)[0][0])
    return blobs


def test_records_follow_the_data_format(synth):
    out, paths = synth
    train, test = _rows(paths["train"]), _rows(paths["test"])
    assert len(train) == 120 and len(test) == 40
    ids = [r["id"] for r in train + test]
    assert len(set(ids)) == len(ids)
    for r in train + test:
        assert r["task_type"] in TASK_TYPES
        assert isinstance(r["prompt"], str) and isinstance(r["answer"], str) and r["answer"]
        assert "<answer>" not in r["prompt"]  # no format instruction unless asked for
        (rel,) = r["images"]
        assert not Path(rel).is_absolute()
        with Image.open(out / rel) as img:
            assert img.size == (56, 56) and img.mode == "RGB"
        if r["task_type"] == "multiple_choice":
            assert r["answer"] in "ABCD"[: len(r["choices"])]
            assert all(f"{'ABCD'[i]}. {c}" in r["prompt"] for i, c in enumerate(r["choices"]))
    assert {r["task_type"] for r in train} == {"counting", "numeric", "math", "multiple_choice", "yes_no"}


def test_answers_verify_and_wrong_answers_do_not(synth):
    _, paths = synth
    for r in _rows(paths["test"]):
        opts = {"choices": r["choices"]} if "choices" in r else {}
        good = f"<think>{r['rationale']}</think><answer>{r['answer']}</answer>"
        assert verify(good, r["answer"], r["task_type"], **opts).correct, r
        a = r["answer"]
        if r["task_type"] == "yes_no":
            wrong = {"yes": "no", "no": "yes"}[a]
        elif r["task_type"] == "multiple_choice":
            wrong = "A" if a != "A" else "B"
        else:
            wrong = str(int(a) + 1)
        assert not verify(f"<think>x</think><answer>{wrong}</answer>", a, r["task_type"], **opts).correct, r


def test_images_show_what_the_answers_say():
    rng = random.Random(7)
    rgb = {v: k for k, v in COLORS.items()}
    for _ in range(12):
        s = make_sample(rng, "counting")
        blobs = _components(s["image"])
        assert len(blobs) == int(s["answer"])
        s = make_sample(rng, "mc_color")
        (color,) = _components(s["image"])
        assert s["choices"]["ABCD".index(s["answer"])] == rgb[color]
        assert s["choices"] == list(COLORS)  # fixed letter per colour: a plain visual classification
        s = make_sample(rng, "yes_no")
        colors = {rgb[c] for c in _components(s["image"])}
        asked = s["prompt"].split("?")[0].split()[-2]
        assert s["answer"] == ("yes" if asked in colors else "no")
        s = make_sample(rng, "mc_side")
        img = s["image"]
        xs = [x for x in range(56) for y in range(56) if img.getpixel((x, y)) != (255, 255, 255)]
        ys = [y for x in range(56) for y in range(56) if img.getpixel((x, y)) != (255, 255, 255)]
        side = s["choices"]["ABCD".index(s["answer"])]
        mid = {"left": max(xs) < 28, "right": min(xs) >= 28, "top": max(ys) < 28, "bottom": min(ys) >= 28}
        assert mid[side], (side, s["prompt"])


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = write_synth(tmp_path / "a", n_train=10, n_test=4, seed=1)
    b = write_synth(tmp_path / "b", n_train=10, n_test=4, seed=1)
    c = write_synth(tmp_path / "c", n_train=10, n_test=4, seed=2)
    assert a["train"].read_text() == b["train"].read_text()
    assert (a["images"] / "train-00003.png").read_bytes() == (b["images"] / "train-00003.png").read_bytes()
    assert a["train"].read_text() != c["train"].read_text()


def test_mix_and_bad_arguments(tmp_path):
    paths = write_synth(tmp_path, n_train=12, n_test=0, seed=0, mix={"numeric": 1.0}, instruction=True)
    rows = _rows(paths["train"])
    assert {r["task_type"] for r in rows} == {"numeric"}
    assert all(r["prompt"].endswith("give the final answer inside <answer> </answer>.") for r in rows)
    assert paths["test"].read_text() == ""
    with pytest.raises(ValueError, match="mix"):
        write_synth(tmp_path, mix={"poems": 1.0})
    with pytest.raises(ValueError, match="n_train"):
        write_synth(tmp_path, n_train=-1)
    with pytest.raises(ValueError, match="family"):
        make_sample(random.Random(0), "poems")
    assert set(FAMILIES) >= {"counting", "numeric", "math", "yes_no"}


def test_cli_writes_the_set(tmp_path):
    import argparse

    from harmo_fast.cli import data

    parser = argparse.ArgumentParser(prog="harmo")
    data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["data", "synth", "--out", str(tmp_path), "--n-train", "6", "--n-test", "2", "--seed", "5"]
    )
    assert args.func(args) == 0
    assert len(_rows(tmp_path / "train.jsonl")) == 6 and len(_rows(tmp_path / "test.jsonl")) == 2


def test_rationale_is_rebuilt_from_prompt_and_answer_except_for_math(synth):
    _, paths = synth
    for r in _rows(paths["train"]):
        rebuilt = rationale_for(r["prompt"], r["answer"], r.get("choices"))
        assert rebuilt == (None if r["task_type"] == "math" else r["rationale"]), r
    assert rationale_for("what is in the picture?", "a cat") is None
