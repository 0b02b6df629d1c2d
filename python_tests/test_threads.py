"""Thread counts per phase: generation (rollouts and evaluations) runs with rollout.num_threads,
the rest of a run with trainer.num_threads."""

from __future__ import annotations

import pytest
import torch
from trainer_fakes import LetterRewards, tiny_config

import harmo_fast
from harmo_fast.data.synth import write_synth
from harmo_fast.trainer.rollout import HFRolloutEngine
from harmo_fast.trainer.run import train
from harmo_fast.trainer.threads import torch_threads


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(before + 2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def _recording(real, seen: list[int]):
    def wrapped(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    return wrapped


def test_generation_uses_rollout_threads_and_the_update_trainer_threads(tmp_path, monkeypatch) -> None:
    write_synth(tmp_path / "data", 16, 6, seed=0)
    generate, loss = [], []
    monkeypatch.setattr(HFRolloutEngine, "generate", _recording(HFRolloutEngine.generate, generate))
    for name in ("grpo_loss", "linear_grpo_loss"):  # whichever loss path the step takes
        monkeypatch.setattr(harmo_fast, name, _recording(getattr(harmo_fast, name), loss))
    cfg = tiny_config(
        tmp_path / "data", "trainer.steps=2", "rollout.num_threads=2", "eval.at_start=true", "eval.at_end=true"
    )
    train(cfg, tmp_path / "run", rewards=LetterRewards())
    assert generate and set(generate) == {2}  # two evaluations and two rollouts
    assert len(generate) >= 4 and loss and set(loss) == {1}


def test_bad_thread_count_is_refused_before_the_run(tmp_path) -> None:
    write_synth(tmp_path / "data", 16, 6, seed=0)
    with pytest.raises(ValueError, match=r"rollout\.num_threads must be >= 1"):
        train(tiny_config(tmp_path / "data", "rollout.num_threads=0"), tmp_path / "run", rewards=LetterRewards())
