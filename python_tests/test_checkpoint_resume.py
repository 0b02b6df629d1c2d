"""Checkpoints: a run interrupted by Ctrl-C and resumed equals the uninterrupted run."""

from __future__ import annotations

import argparse
import signal

import pytest
import torch
from safetensors.torch import load_file
from trainer_fakes import LetterRewards, tiny_config

from harmo_fast.cli import train as train_cli
from harmo_fast.data.synth import write_synth
from harmo_fast.trainer.checkpoint import checkpoint_dirs
from harmo_fast.trainer.config import ModelConfig
from harmo_fast.trainer.metrics import read_metrics
from harmo_fast.trainer.policy import load_policy
from harmo_fast.trainer.run import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synth(d, 16, 4, seed=1)
    return d


def _comparable(record):
    return {k: v for k, v in record.items() if not k.startswith("time/") and k != "tokens_per_second"}


def test_interrupt_then_resume_equals_uninterrupted_run(tmp_path, data_dir):
    # Two PPO epochs per batch: old log-probs, optimizer and scheduler state all matter.
    cfg = tiny_config(data_dir, "trainer.steps=4", "algorithm.num_iterations=2", "trainer.lr_warmup_steps=2")
    train(cfg, tmp_path / "a", rewards=LetterRewards())

    def ctrl_c_at_step_2(step, metrics):
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    first = train(cfg, tmp_path / "b", rewards=LetterRewards(), on_step=ctrl_c_at_step_2)
    assert first.interrupted and first.steps_done == 2
    assert [p.name for p in checkpoint_dirs(tmp_path / "b")] == ["step-000002"]
    second = train(cfg, tmp_path / "b", resume=True, rewards=LetterRewards())
    assert second.steps_done == 4 and not second.interrupted

    wa = load_file(str(tmp_path / "a" / "checkpoints" / "step-000004" / "weights.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoints" / "step-000004" / "weights.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ma, mb = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [_comparable(r) for r in ma] == [_comparable(r) for r in mb]
    assert ma[-1]["grad_norm"] > 0  # the runs really trained
    oa = torch.load(tmp_path / "a" / "checkpoints" / "step-000004" / "optim.pt", weights_only=True)
    ob = torch.load(tmp_path / "b" / "checkpoints" / "step-000004" / "optim.pt", weights_only=True)
    assert oa["scheduler"] == ob["scheduler"]
    assert all(
        torch.equal(x["exp_avg"], y["exp_avg"])
        for x, y in zip(oa["optimizer"]["state"].values(), ob["optimizer"]["state"].values())
    )


def test_keep_last_k_and_no_temporary_directories(tmp_path, data_dir):
    cfg = tiny_config(data_dir, "trainer.steps=3", "checkpoint.every=1", "checkpoint.keep_last=2")
    train(cfg, tmp_path, rewards=LetterRewards())
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-000002", "step-000003"]
    ckpt = root / "step-000003"
    assert {p.name for p in ckpt.iterdir()} == {"weights.safetensors", "optim.pt", "state.json", "config.yaml"}
    blob = torch.load(ckpt / "optim.pt", weights_only=True)
    assert {"optimizer", "scheduler", "torch_rng"} <= set(blob)
    # a checkpoint directory is a model path for `harmo eval` / model.name
    policy = load_policy(ModelConfig(name=str(ckpt)), "cpu")
    saved = load_file(str(ckpt / "weights.safetensors"))
    assert all(torch.equal(v, saved[k]) for k, v in policy.model.state_dict().items() if k in saved)


def test_resume_without_checkpoint_and_bad_data_are_clear_errors(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    (tmp_path / "config.yaml").write_text("trainer:\n  steps: 1\n")
    assert train_cli.run(parser.parse_args(["train", "--resume", str(tmp_path)])) == 2
    assert "no checkpoint" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "q1", "prompt": "p", "answer": "1", "task_type": "numeric", "images": ["gone.png"]}\n')
    assert (
        train_cli.run(
            parser.parse_args(["train", f"data.train={bad}", "data.test=null", "--out", str(tmp_path / "run")])
        )
        == 2
    )
    assert "bad.jsonl:1 (id 'q1'): image not found" in capsys.readouterr().out
