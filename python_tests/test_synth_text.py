"""The synthetic text task set: valid docs/SPEC.md §4 records whose answers are the value of the
question, verified by the math verifier; graded levels, disjoint splits, determinism, the CLI and
`data.synth_kind=text` in a run."""

from __future__ import annotations

import json
import operator
import random
import re
from pathlib import Path

import pytest

from harmo_fast.cli import main
from harmo_fast.data.jsonl import load_jsonl
from harmo_fast.data.synth_text import LEVELS, make_text_sample, write_text_synth
from harmo_fast.rewards import verify
from harmo_fast.trainer.config import load_config
from harmo_fast.trainer.run import load_data

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _value(expr: str) -> int:
    """An expression of integers and + - * with the usual precedence, evaluated without eval()."""
    tokens = expr.split()
    terms = [int(tokens[0])]
    signs = []
    for op, num in zip(tokens[1::2], tokens[2::2]):
        if op == "*":
            terms[-1] *= int(num)
        else:
            signs.append(op)
            terms.append(int(num))
    total = terms[0]
    for op, t in zip(signs, terms[1:]):
        total = OPS[op](total, t)
    return total


def _expected(prompt: str) -> int:
    if m := re.fullmatch(r"What is ([\d +*-]+)\?", prompt):
        return _value(m.group(1))
    nums = [int(n) for n in re.findall(r"\d+", prompt)]
    if "buys" in prompt:
        return nums[0] + nums[1]
    if "gives" in prompt:
        return nums[0] - nums[1]
    assert prompt.startswith("Each"), prompt
    return nums[0] * nums[1]


@pytest.fixture(scope="module")
def text_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("text")
    return write_text_synth(out, n_train=400, n_test=100, seed=5)


def test_records_load_and_answers_are_the_questions_values(text_set):
    for split in ("train", "test"):
        ds = load_jsonl(text_set[split])
        assert len(ds) == {"train": 400, "test": 100}[split] and not ds.skipped
        for row in _rows(text_set[split]):
            assert row["images"] == [] and row["task_type"] == "math" and row["level"] in LEVELS
            assert int(row["answer"]) == _expected(row["prompt"]), row
            assert row["rationale"].endswith(f"= {row['answer']}")


def test_the_math_verifier_accepts_the_answer_and_rejects_an_off_by_one(text_set):
    for row in _rows(text_set["test"])[:30]:
        good = verify(row["answer"], row["answer"], "math")
        bad = verify(str(int(row["answer"]) + 1), row["answer"], "math")
        assert good.correct and not bad.correct, row


def test_splits_share_no_prompt_and_every_level_appears(text_set):
    train, test = _rows(text_set["train"]), _rows(text_set["test"])
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert {r["level"] for r in train} == set(LEVELS) == {r["level"] for r in test}


def test_levels_grow_harder_in_answer_size():
    rng = random.Random(0)
    mean = {lv: sum(abs(int(make_text_sample(rng, lv)["answer"])) for _ in range(300)) / 300 for lv in (1, 2)}
    assert mean[2] > 5 * mean[1]


def test_level_weights_instruction_and_determinism(tmp_path):
    a = write_text_synth(tmp_path / "a", 30, 10, seed=1, levels={4: 1.0}, instruction=" Show your work.")
    b = write_text_synth(tmp_path / "b", 30, 10, seed=1, levels={4: 1.0}, instruction=" Show your work.")
    c = write_text_synth(tmp_path / "c", 30, 10, seed=2, levels={4: 1.0}, instruction=" Show your work.")
    rows = _rows(a["train"])
    assert {r["level"] for r in rows} == {4} and all(r["prompt"].endswith("? Show your work.") for r in rows)
    assert a["train"].read_text() == b["train"].read_text() != c["train"].read_text()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_train": -1}, "must be >= 0"),
        ({"levels": {9: 1.0}}, "levels must weight"),
        ({"levels": {1: 0.0}}, "levels must weight"),
        ({"levels": {1: 1.0, 2: -1.0}}, "levels must weight"),
    ],
)
def test_bad_settings_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_text_synth(tmp_path, **kwargs)


def test_a_level_too_small_for_the_held_out_split_is_an_error(tmp_path):
    # Level 3 has 64 distinct prompts: a held-out split of 2000 draws covers them all.
    with pytest.raises(ValueError, match="could not draw a training prompt"):
        write_text_synth(tmp_path, n_train=5, n_test=2000, levels={3: 1.0})


def test_unknown_level_is_named():
    with pytest.raises(ValueError, match="unknown level"):
        make_text_sample(random.Random(0), 6)


def test_cli_writes_the_text_set(tmp_path, capsys):
    assert main(["data", "synth", "--kind", "text", "--out", str(tmp_path), "--n-train", "7", "--n-test", "3"]) == 0
    assert len(_rows(tmp_path / "train.jsonl")) == 7 and len(_rows(tmp_path / "test.jsonl")) == 3
    assert not (tmp_path / "images").exists()
    assert "wrote 7 training and 3 held-out" in capsys.readouterr().out


def test_a_run_with_synth_kind_text_writes_the_text_set(tmp_path):
    cfg = load_config(None, ["data.synth_kind=text", "data.synth_train=12", "data.synth_test=4"])
    train, test = load_data(cfg, tmp_path)
    assert len(train) == 12 and len(test) == 4
    assert all(s.task_type == "math" and not s.images for s in train.samples)
