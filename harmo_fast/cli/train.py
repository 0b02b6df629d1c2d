"""`harmo train [RECIPE | cfg.yaml] [dotted.key=value ...] [--out RUN_DIR] [--resume RUN_DIR]`: run
HARMO GRPO. Settings layer: the dataclass defaults (harmo_fast/trainer/config.py, each with its help
text), then a recipe (a name listed by `harmo train --list-recipes`, from harmo_fast/recipes/) or a
YAML file, then the overrides. Without a recipe or file the default recipe runs (a tiny VLM on the
synthetic task set). An override value that is not valid YAML, or that does not fit a text setting,
is taken as written: `data.prompt_template={prompt} Answer:` needs no extra quotes.

Multi-process: `torchrun --nproc-per-node N -m harmo_fast.cli train ... trainer.parallel=ddp` (or
fsdp); every rank runs this command, rank 0 writes the run directory (README "Scale out")."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harmo_fast import recipes
from harmo_fast.trainer.config import ConfigError, config_yaml, load_config


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
        metavar="[RECIPE | CONFIG.yaml] [KEY=VALUE ...]",
        help="an optional recipe name or YAML config, then dotted overrides such as trainer.lr=1e-6",
    )
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<timestamp>)")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its latest checkpoint (its config.yaml, plus any overrides)",
    )
    p.add_argument("--list-recipes", action="store_true", help="list the named recipes and exit")
    p.add_argument("--print-config", action="store_true", help="print the effective config as YAML and exit")
    p.set_defaults(func=run)


def split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(recipe name or config path, or None; overrides): the first argument is the config when it has no '='."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, list(args)


def list_recipes() -> str:
    """One line per shipped recipe: its name (the default marked) and what it is for."""
    names = recipes.recipe_names()
    width = max(len(n) for n in names) + len(" (default)")
    rows = []
    for name in names:
        label = f"{name} (default)" if name == recipes.DEFAULT_RECIPE else name
        rows.append(f"{label:<{width}}  {recipes.recipe_summary(name)}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        print(list_recipes())
        return 0
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
    if args.print_config:
        print(config_yaml(cfg), end="")
        return 0
    from harmo_fast.data.jsonl import DataError
    from harmo_fast.trainer.distributed import DistributedError
    from harmo_fast.trainer.run import train

    try:
        result = train(cfg, args.resume or args.out, resume=args.resume is not None)
    except (DataError, FileNotFoundError) as exc:
        print(f"harmo train: {exc}")
        return 2
    except DistributedError as exc:
        print(f"harmo train: {exc}; continue from the last checkpoint with --resume RUN_DIR")
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run directory: {result.out_dir}")
    return 130 if result.interrupted else 0
