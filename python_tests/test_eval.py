"""Evaluation: accuracy per task type through our verifiers, the table, and `harmo eval`."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from harmo_fast.cli import eval as eval_cli
from harmo_fast.data.jsonl import Sample
from harmo_fast.data.synth import write_synth
from harmo_fast.rewards import RewardPipeline
from harmo_fast.rewards.config import ModelRMConfig, RewardConfig
from harmo_fast.trainer.evaluate import evaluate, format_table, paired_gain
from harmo_fast.trainer.rollout import RolloutBatch, RolloutEngine
from harmo_fast.trainer.tiny_policy import build_tiny_lm, build_tiny_vlm

torch.set_num_threads(1)


class ScriptedEngine(RolloutEngine):
    """Answers each sample with a fixed completion (a policy whose outputs we know)."""

    def __init__(self, script: dict[str, str]):
        self.script = script
        self.calls = []

    def generate(self, samples, num_generations, *, greedy=False, max_new_tokens=None):
        self.calls.append((len(samples), num_generations, greedy))
        texts = [self.script[s.id] for s in samples for _ in range(num_generations)]
        n = len(texts)
        lengths = torch.tensor([len(t.split()) for t in texts])
        ids = torch.zeros((n, int(lengths.max())), dtype=torch.long)
        mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
        return RolloutBatch(
            [s for s in samples for _ in range(num_generations)],
            torch.arange(n),
            {},
            ids,
            mask,
            lengths,
            torch.zeros(n, dtype=torch.bool),
            texts,
        )


SAMPLES = [
    Sample("c1", "how many?", "3", "counting"),
    Sample("c2", "how many?", "5", "counting"),
    Sample("y1", "is it red?", "yes", "yes_no"),
    Sample("m1", "which?", "B", "multiple_choice", choices=["A. red", "B. blue"]),
    Sample("n1", "what is 5-8?", "-3", "math"),
]
SCRIPT = {
    "c1": "<think>one two three</think><answer>3</answer>",
    "c2": "<think>I see four</think><answer>four</answer>",
    "y1": "<think>it is red</think> <answer>Yes</answer>",
    "m1": "<answer>B</answer>",  # right answer, wrong format
    "n1": "<think>5-8</think><answer>-3</answer>",
}


@pytest.fixture(scope="module")
def pipeline():
    with RewardPipeline(RewardConfig(num_workers=1, model_rm=ModelRMConfig(kind="none"))) as p:
        yield p


def test_paired_gain_over_the_shared_samples():
    before = {"correct": {"a": False, "b": False, "c": True, "d": True, "x": False}}
    after = {"correct": {"a": True, "b": False, "c": True, "d": False, "e": True}}
    g = paired_gain(before, after)  # shared a..d: differences +1, 0, 0, -1
    assert (g["n"], g["gain"], g["gained"], g["lost"]) == (4, 0.0, 1, 1)
    assert g["stderr"] == pytest.approx((2 / 3 / 4) ** 0.5)  # sample variance 2/3 over n = 4
    g = paired_gain(before, {"correct": {k: True for k in "abcd"}})
    assert g["gain"] == pytest.approx(0.5) and g["stderr"] == pytest.approx((1 / 3 / 4) ** 0.5)
    with pytest.raises(ValueError, match="share no"):
        paired_gain(before, {"correct": {"z": True}})


def test_accuracy_per_task_type_of_a_scripted_policy(pipeline):
    engine = ScriptedEngine(SCRIPT)
    report = evaluate(engine, pipeline, SAMPLES, batch_size=2)
    assert engine.calls == [(2, 1, True), (2, 1, True), (1, 1, True)]  # greedy, one completion each
    assert report["n"] == 5 and report["accuracy"] == pytest.approx(0.8)
    assert report["per_task_type"] == {
        "counting": {"n": 2, "accuracy": 0.5},
        "math": {"n": 1, "accuracy": 1.0},
        "multiple_choice": {"n": 1, "accuracy": 1.0},
        "yes_no": {"n": 1, "accuracy": 1.0},
    }
    assert report["format_compliance"] == pytest.approx(0.8)
    assert report["correct"] == {"c1": True, "c2": False, "y1": True, "m1": True, "n1": True}
    table = format_table(report, "scripted")
    assert "counting" in table and "50.0%" in table and "overall" in table and "80.0%" in table


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    return eval_cli.run(parser.parse_args(["eval", *argv]))


@pytest.mark.parametrize("kind", ["lm", "vlm"])
def test_harmo_eval_on_a_saved_hf_model_directory(tmp_path, kind, capsys):
    data = tmp_path / "data"
    write_synth(data, 0, 3, seed=2)
    model, processor = (build_tiny_lm if kind == "lm" else build_tiny_vlm)(
        seed=0, hidden_size=64, intermediate_size=128, vision_embed_dim=32, vision_depth=1, vision_num_heads=2
    )
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "report.json"
    assert (
        _run_cli(
            [
                "--model",
                str(tmp_path / "model"),
                "--data",
                str(data / "test.jsonl"),
                "--out",
                str(out),
                "--max-new-tokens",
                "6",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["n"] == 3 and 0.0 <= report["accuracy"] <= 1.0
    assert sum(v["n"] for v in report["per_task_type"].values()) == 3
    assert "overall" in capsys.readouterr().out


def test_harmo_eval_reports_bad_data_clearly(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "z", "prompt": "p", "answer": "1", "task_type": "essay"}\n')
    assert _run_cli(["--model", "tiny-lm", "--data", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().out
