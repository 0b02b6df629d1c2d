"""`harmo compare`: overlaying runs' curves and tabulating their evaluations."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harmo_fast.cli import main
from harmo_fast.trainer.smoothing import moving_average


@pytest.mark.parametrize("window", [1, 3, 7, 50])
def test_moving_average_is_the_trailing_mean(window: int) -> None:
    rng = random.Random(window)
    values = [rng.uniform(-5, 5) for _ in range(40)]
    expected = [sum(values[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(values))]
    assert moving_average(values, window) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_moving_average_rejects_a_zero_window() -> None:
    with pytest.raises(ValueError, match="window"):
        moving_average([1.0, 2.0], 0)


def _fake_run(path: Path, length: float, end_acc: float, with_gain: bool) -> Path:
    path.mkdir()
    rows = [
        {
            "step": s,
            "reward/total_mean": 0.1 * s,
            "accuracy": 0.02 * s,
            "length/mean": length + s % 3,
            "length/min": length - 4,
        }
        for s in range(1, 21)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "eval_start.json").write_text(json.dumps({"accuracy": 0.0}))
    (path / "eval_end.json").write_text(json.dumps({"accuracy": end_acc}))
    if with_gain:
        (path / "eval_warmup.json").write_text(json.dumps({"accuracy": end_acc - 0.05}))
        (path / "grpo_gain.json").write_text(json.dumps({"gain": 0.05, "stderr": 0.012}))
    return path


def test_compare_writes_one_figure_and_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    on = _fake_run(tmp_path / "penalty_on", 13.0, 0.452, with_gain=True)
    off = _fake_run(tmp_path / "penalty_off", 9.0, 0.4375, with_gain=False)
    out = tmp_path / "cmp.png"
    assert main(["compare", str(on), str(off), "--out", str(out), "--smooth", "5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    lines = capsys.readouterr().out.splitlines()
    on_row = next(line for line in lines if line.startswith("penalty_on"))
    off_row = next(line for line in lines if line.startswith("penalty_off"))
    assert on_row.split() == ["penalty_on", "0.0%", "40.2%", "45.2%", "+5.0%", "(1.2%)"]
    assert off_row.split() == ["penalty_off", "0.0%", "-", "43.8%", "-"]


def test_compare_names_a_directory_without_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _fake_run(tmp_path / "good", 13.0, 0.5, with_gain=False)
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(good), str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")]) == 2
    assert "no metrics.jsonl in " + str(tmp_path / "empty") in capsys.readouterr().out
    assert not (tmp_path / "x.png").exists()
