"""`harmo train [cfg.yaml] [dotted.key=value ...] [--out RUN_DIR] [--resume RUN_DIR]`: run HARMO
GRPO. Without a config file the embedded default runs (a tiny VLM on the synthetic task set)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a policy with HARMO GRPO",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "args",
        nargs="*",
        metavar="[CONFIG.yaml] [KEY=VALUE ...]",
        help="an optional YAML config, then dotted overrides such as trainer.lr=1e-6 rewards.length.p_max=0.3",
    )
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<timestamp>)")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its latest checkpoint (its config.yaml, plus any overrides)",
    )
    p.set_defaults(func=run)


def split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(config path or None, overrides): the first argument is a config when it has no '='."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, list(args)


def run(args: argparse.Namespace) -> int:
    from harmo_fast.data.jsonl import DataError
    from harmo_fast.trainer.config import ConfigError, load_config
    from harmo_fast.trainer.run import train

    path, overrides = split_args(args.args)
    try:
        if args.resume is not None:
            if path is not None:
                raise ConfigError(f"--resume takes the config of {args.resume}; give only overrides, not {path!r}")
            if args.out is not None and args.out != args.resume:
                raise ConfigError("--resume RUN_DIR writes into RUN_DIR; do not also pass a different --out")
            cfg = load_config(args.resume / "config.yaml", overrides)
        else:
            cfg = load_config(path, overrides)
    except ConfigError as exc:
        print(f"harmo train: {exc}")
        return 2
    try:
        result = train(cfg, args.resume or args.out, resume=args.resume is not None)
    except (DataError, FileNotFoundError) as exc:
        print(f"harmo train: {exc}")
        return 2
    print(f"run directory: {result.out_dir}")
    return 130 if result.interrupted else 0
