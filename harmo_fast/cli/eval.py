"""`harmo eval --model PATH --data test.jsonl [--out report.json]`: greedy decoding, our
verifiers, accuracy overall and per task type (printed as a table, written as JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="evaluate a policy on a JSONL set", description=__doc__)
    p.add_argument(
        "--model",
        required=True,
        help="hub id, local HF model directory, harmo checkpoint directory, tiny-vlm or tiny-lm",
    )
    p.add_argument("--data", required=True, help="JSONL file (docs/SPEC.md §4) or hf:name[:split]")
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    p.add_argument(
        "--config", type=Path, default=None, help="a train config whose rewards/data/rollout settings to use"
    )
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harmo_fast.data.jsonl import DataError, load_dataset
    from harmo_fast.rewards import RewardPipeline
    from harmo_fast.trainer.config import Config, ConfigError, load_config
    from harmo_fast.trainer.evaluate import evaluate, format_table, write_report
    from harmo_fast.trainer.policy import load_policy, resolve_device
    from harmo_fast.trainer.prompts import PromptEncoder
    from harmo_fast.trainer.rollout import build_engine

    try:
        cfg = load_config(args.config) if args.config else Config()
        data = load_dataset(args.data, skip_bad=cfg.data.skip_bad_samples)
    except (ConfigError, DataError) as exc:
        print(f"harmo eval: {exc}")
        return 2
    cfg.model.name = args.model
    device = resolve_device(args.device)
    policy = load_policy(cfg.model, device, cfg.trainer.seed)
    encoder = PromptEncoder(policy.processor, policy.is_vlm, cfg.data.prompt_template, cfg.data.system_prompt)
    engine = build_engine(
        cfg.rollout.engine,
        model=policy.model,
        encoder=encoder,
        max_new_tokens=args.max_new_tokens or cfg.rollout.max_new_tokens,
        device=device,
    )
    samples = data.samples[: args.max_samples] if args.max_samples else data.samples
    rewards = RewardPipeline(cfg.rewards)
    try:
        report = evaluate(
            engine, rewards, samples, batch_size=args.batch_size, format_enabled=cfg.rewards.format.enabled
        )
    finally:
        rewards.close()
    report["model"] = args.model
    report["data"] = str(args.data)
    print(format_table(report, f"{args.model} on {args.data}"))
    if args.out is not None:
        write_report(report, args.out)
    return 0
