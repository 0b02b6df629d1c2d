"""What a run records: one JSON line per step in metrics.jsonl (and TensorBoard scalars when the
tensorboard package is installed), and sample completions with their rewards in samples.jsonl.

Keys of a step record (METRIC_KEYS; accuracy/<task_type> is added per task type present):
reward/{total,hybrid,length,format}_{mean,std}, accuracy, format_compliance,
length/{mean,min,max}, truncated_frac, groups/no_correct_frac, groups/zero_spread_frac,
length_penalty/fire_rate, kl, clip_low_frac, clip_high_frac, ratio_mean, entropy, loss,
grad_norm, trained_frac, lr, nan_skipped, tokens_per_second and the time split in seconds:
time/generation (includes time/data, the prompt encoding), time/logprobs (old/reference passes),
time/rewards_wait (reward time not hidden behind them), time/advantages, time/update (includes
time/loss, the loss math), time/other (logging, sampling), time/step; time/rewards_total is the
reward pipeline's own compute time; time/comm is the time of a multi-process step in the trainer's
own collectives (the ddp gradient all-reduce, the loss and stats sums; waiting for a slower rank
included; FSDP's gathers inside forward and backward are not counted), 0 in one process."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

METRIC_KEYS = (
    "step",
    "reward/total_mean", "reward/total_std",
    "reward/hybrid_mean", "reward/hybrid_std",
    "reward/length_mean", "reward/length_std",
    "reward/format_mean", "reward/format_std",
    "accuracy", "format_compliance",
    "length/mean", "length/min", "length/max", "truncated_frac",
    "groups/no_correct_frac", "groups/zero_spread_frac", "length_penalty/fire_rate",
    "kl", "clip_low_frac", "clip_high_frac", "ratio_mean", "entropy",
    "loss", "grad_norm", "trained_frac", "lr", "nan_skipped",
    "time/generation", "time/data", "time/logprobs", "time/rewards_wait", "time/rewards_total",
    "time/advantages", "time/update", "time/loss", "time/other", "time/step", "time/comm", "tokens_per_second",
)  # fmt: skip


def _mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0


def reward_metrics(
    total: list[float],
    components: dict[str, list[float]],
    correct: list[bool],
    task_types: list[str],
    group_ids: list[int],
    lengths: list[int],
    truncated: list[bool],
    format_enabled: bool,
) -> dict[str, float]:
    """Reward, accuracy, format and length statistics of one generation batch."""
    out: dict[str, float] = {}
    for name, values in [("total", total)] + [
        (k, components[k]) for k in ("hybrid", "length", "format") if k in components
    ]:
        out[f"reward/{name}_mean"], out[f"reward/{name}_std"] = _mean_std(values)
    out["accuracy"] = sum(correct) / len(correct)
    by_type: dict[str, list[bool]] = defaultdict(list)
    for t, c in zip(task_types, correct):
        by_type[t].append(c)
    for t, cs in sorted(by_type.items()):
        out[f"accuracy/{t}"] = sum(cs) / len(cs)
    fmt = components.get("format")
    out["format_compliance"] = sum(v > 0 for v in fmt) / len(fmt) if (format_enabled and fmt) else float("nan")
    out["length/mean"] = sum(lengths) / len(lengths)
    out["length/min"] = float(min(lengths))
    out["length/max"] = float(max(lengths))
    out["truncated_frac"] = sum(truncated) / len(truncated)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_ids):
        groups[g].append(i)
    out["groups/no_correct_frac"] = sum(not any(correct[i] for i in idx) for idx in groups.values()) / len(groups)
    out["groups/zero_spread_frac"] = sum(
        max(total[i] for i in idx) == min(total[i] for i in idx) for idx in groups.values()
    ) / len(groups)
    pen = components.get("length", [])
    out["length_penalty/fire_rate"] = sum(v < 0 for v in pen) / len(pen) if pen else 0.0
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """metrics.jsonl, samples.jsonl and (optionally) TensorBoard under `run_dir`."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.samples_path = self.run_dir / "samples.jsonl"
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: JSONL only
                self._tb = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with self.metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def log_samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        with self.samples_path.open("a") as fh:
            for row in rows:
                fh.write(json.dumps({"step": step, **row}) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume: drop records of steps after the checkpoint (they will be redone)."""
        for path in (self.metrics_path, self.samples_path):
            if path.is_file():
                keep = [
                    line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
                ]
                path.write_text("".join(line + "\n" for line in keep))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
