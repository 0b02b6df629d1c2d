"""`harmo eval --model PATH --data test.jsonl [--out report.json]`: greedy decoding, our
verifiers, accuracy overall and per task type (printed as a table, written as JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harmo_fast.data.jsonl import DataError, load_dataset
from harmo_fast.trainer.config import Config, ConfigError, load_config


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
    # torch-heavy: every sub-command module is imported to build the parser (harmo data, harmo backends)
    from harmo_fast.trainer.evaluate import evaluate_model, format_table, write_report

    try:
        cfg = load_config(args.config) if args.config else Config()
        data = load_dataset(args.data, skip_bad=cfg.data.skip_bad_samples)
    except (ConfigError, DataError) as exc:
        print(f"harmo eval: {exc}")
        return 2
    cfg.model.name = args.model
    samples = data.samples[: args.max_samples] if args.max_samples else data.samples
    report = evaluate_model(
        cfg, samples, device=args.device, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
    )
    report["model"] = args.model
    report["data"] = str(args.data)
    print(format_table(report, f"{args.model} on {args.data}"))
    if args.out is not None:
        write_report(report, args.out)
    return 0
