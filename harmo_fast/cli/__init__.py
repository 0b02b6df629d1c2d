"""The `harmo` command line. Each sub-command lives in its own module and registers itself in
SUBCOMMANDS: a module exposing `register(subparsers)` that sets `func` on its parser."""

from __future__ import annotations

import argparse
import importlib

# "harmo <name> ..." -> module providing register(subparsers).
SUBCOMMANDS = {
    "train": "harmo_fast.cli.train",
    "eval": "harmo_fast.cli.eval",
    "data": "harmo_fast.cli.data",
    "rm": "harmo_fast.cli.rm",
    "compare": "harmo_fast.cli.compare",
    "backends": "harmo_fast.cli.backends",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harmo", description="HARMO: hybrid multi-aspect reward GRPO")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
