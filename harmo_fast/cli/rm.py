"""`harmo rm train`: fit a Bradley-Terry reward head on frozen sentence embeddings from a JSONL
file of (prompt, chosen, rejected) pairs, and save it (safetensors + config.json) for
`rewards.model_rm.kind: head`."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rm", help="train model-based reward models")
    sub = p.add_subparsers(dest="rm_command", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train a preference head on (prompt, chosen, rejected) JSONL pairs")
    t.add_argument("--pairs", required=True, help='JSONL, one {"prompt", "chosen", "rejected"} object per line')
    t.add_argument("--out", required=True, help="output directory (head.safetensors + config.json)")
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--embedder", default=None, help="sentence-transformers name or path (default: bundled all-MiniLM-L6-v2)"
    )
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    # torch: every sub-command module is imported to build the parser (harmo data, harmo backends)
    from harmo_fast.rewards.preference_head import read_pairs, train_preference_head

    try:
        pairs = read_pairs(args.pairs)
    except (OSError, ValueError) as e:
        print(f"harmo rm train: error: {e}", file=sys.stderr)
        return 2
    rm = train_preference_head(
        pairs,
        embedder=args.embedder,
        epochs=args.epochs,
        lr=args.lr,
        hidden=args.hidden,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    out = rm.save(args.out)
    stats = rm.config["train"]
    print(
        f"trained on {stats['pairs']} pairs: loss {stats['final_loss']:.4f}, "
        f"train accuracy {stats['accuracy']:.3f}; saved to {out}"
    )
    return 0
