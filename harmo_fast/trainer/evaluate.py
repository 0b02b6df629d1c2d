"""Held-out evaluation: greedy decoding, our verifiers (through the reward pipeline, so routing and
the model-based fallback are the training ones), accuracy overall and per task type."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from harmo_fast.data.jsonl import Sample
from harmo_fast.rewards.pipeline import RewardPipeline
from harmo_fast.trainer.config import Config
from harmo_fast.trainer.engines import build_engine
from harmo_fast.trainer.policy import load_policy, resolve_device
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import RolloutEngine, reward_samples


def evaluate(
    engine: RolloutEngine,
    rewards: Any,
    samples: list[Sample],
    *,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
    format_enabled: bool = True,
) -> dict[str, Any]:
    """Accuracy report of greedy completions; scoring of one chunk overlaps the next generation."""
    pending = []
    for i in range(0, len(samples), batch_size):
        batch = engine.generate(samples[i : i + batch_size], 1, greedy=True, max_new_tokens=max_new_tokens)
        pending.append((batch, rewards.submit(reward_samples(batch))))
    by_type: dict[str, list[bool]] = defaultdict(list)
    per_sample: dict[str, bool] = {}
    n_format = n_total = 0
    lengths = []
    for batch, future in pending:
        result = future.result()
        fmt = result.components.get("format", [])
        for s, verdict, n, f in zip(batch.samples, result.verdicts, batch.lengths.tolist(), fmt or [0.0] * batch.size):
            by_type[s.task_type].append(bool(verdict.correct))
            per_sample[s.id] = bool(verdict.correct)
            n_format += f > 0
            n_total += 1
            lengths.append(n)
    correct = [c for cs in by_type.values() for c in cs]
    return {
        "n": n_total,
        "accuracy": sum(correct) / max(1, len(correct)),
        "per_task_type": {t: {"n": len(cs), "accuracy": sum(cs) / len(cs)} for t, cs in sorted(by_type.items())},
        "format_compliance": (n_format / max(1, n_total)) if format_enabled else None,
        "response_length_mean": sum(lengths) / max(1, len(lengths)),
        "correct": per_sample,  # sample id -> correct, for paired comparisons of two evaluations
    }


def evaluate_model(
    cfg: Config, samples: list[Sample], *, device: str = "auto", batch_size: int, max_new_tokens: int | None = None
) -> dict[str, Any]:
    """`evaluate` of the policy `cfg.model` names on `device` ("auto": CUDA when available), with
    the config's prompt, rollout and reward settings."""
    device = resolve_device(device)
    policy = load_policy(cfg.model, device, cfg.trainer.seed)
    encoder = PromptEncoder(policy.processor, policy.is_vlm, cfg.data.prompt_template, cfg.data.system_prompt)
    engine = build_engine(
        cfg,
        model=policy.model,
        encoder=encoder,
        max_new_tokens=max_new_tokens or cfg.rollout.max_new_tokens,
        device=device,
    )
    rewards = RewardPipeline(cfg.rewards)
    try:
        return evaluate(engine, rewards, samples, batch_size=batch_size, format_enabled=cfg.rewards.format.enabled)
    finally:
        rewards.close()
        engine.close()


def merge_reports(reports: list[dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """One report of `evaluate` over the union of disjoint sample shards (one report per rank);
    per-sample results in `order` (the sample ids of the whole set)."""
    n = sum(r["n"] for r in reports)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in reports:
        for t, v in r["per_task_type"].items():
            counts[t][0] += v["n"]
            counts[t][1] += round(v["accuracy"] * v["n"])
    correct = {k: v for r in reports for k, v in r["correct"].items()}
    fmt = [r["format_compliance"] for r in reports if r["n"]]
    return {
        "n": n,
        "accuracy": sum(c for _, c in counts.values()) / max(1, n),
        "per_task_type": {t: {"n": m, "accuracy": c / m} for t, (m, c) in sorted(counts.items())},
        "format_compliance": None
        if any(f is None for f in fmt)
        else sum(r["format_compliance"] * r["n"] for r in reports if r["n"]) / max(1, n),
        "response_length_mean": sum(r["response_length_mean"] * r["n"] for r in reports) / max(1, n),
        "correct": {k: correct[k] for k in order if k in correct},
    }


def paired_gain(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Accuracy gain of `after` over `before` on the samples both reports scored, with the paired
    standard error std(d) / sqrt(n) of the per-sample differences d in {-1, 0, 1}."""
    ids = sorted(set(before["correct"]) & set(after["correct"]))
    if not ids:
        raise ValueError("before and after share no scored sample ids")
    d = [int(after["correct"][i]) - int(before["correct"][i]) for i in ids]
    n, mean = len(d), sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    return {"n": n, "gain": mean, "stderr": math.sqrt(var / n), "gained": d.count(1), "lost": d.count(-1)}


def format_table(report: dict[str, Any], title: str = "evaluation") -> str:
    rows = [(t, v["n"], v["accuracy"]) for t, v in report["per_task_type"].items()] + [
        ("overall", report["n"], report["accuracy"])
    ]
    width = max(len(r[0]) for r in [*rows, ("task type", 0, 0)])
    lines = [title, f"{'task type':<{width}}  {'n':>5}  accuracy", "-" * (width + 17)]
    lines += [f"{name:<{width}}  {n:>5}  {acc:8.1%}" for name, n, acc in rows]
    if report.get("format_compliance") is not None:
        lines.append(f"format compliance: {report['format_compliance']:.1%}")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
