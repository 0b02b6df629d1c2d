"""`harmo train ... rollout.engine=vllm` end to end: the command line in a fresh process (vLLM
starts its engine core with `spawn`), 2 GRPO steps of a tiny model on the synthetic text set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import MAX_MODEL_LEN, RAM_SHARE


def test_harmo_train_with_vllm_rollouts(tmp_path: Path):
    out = tmp_path / "run"
    args = [
        "model.name=tiny-lm", "model.freeze_vision=false",
        "data.synth_kind=text", "data.synth_train=16", "data.synth_test=4",
        "rollout.engine=vllm", f"rollout.vllm_gpu_memory_utilization={RAM_SHARE}", "rollout.vllm_dtype=float32",
        "rollout.vllm_enforce_eager=true", f"rollout.vllm_max_model_len={MAX_MODEL_LEN}",
        "rollout.max_new_tokens=12", "algorithm.group_size=4", "algorithm.prompts_per_step=2",
        "trainer.steps=2", "trainer.device=cpu", "trainer.lr=1e-3", "trainer.lr_warmup_steps=0",
        "warmup.steps=0", "eval.at_start=false", "eval.at_end=true", "eval.max_samples=4",
        "logging.progress_bar=false", "logging.tensorboard=false", "logging.plots=false",
        "checkpoint.save_final_model=false", "rewards.num_workers=1", "rewards.model_rm.kind=none",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "harmo_fast.cli", "train", *args, "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["length/mean"] > 0 and r["tokens_per_second"] > 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and all(isinstance(s["completion"], str) for s in samples)
    report = json.loads((out / "eval_end.json").read_text())
    assert report["n"] == 4
