"""`harmo backends`: print which kernel backends this install can run, and why not the rest."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("backends", help="show which kernel backends are available")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch: every sub-command module is imported to build the parser (harmo data must not pay for it)
    from harmo_fast._dispatch import available_backends

    for name, status in available_backends().items():
        print(f"{name:7s} {status}")
    return 0
