"""`harmo data synth --out DIR [--kind image|text]`: write a synthetic task set (train/test JSONL, plus
PNGs for the multimodal one)."""

from __future__ import annotations

import argparse

from harmo_fast.data.synth import INSTRUCTION
from harmo_fast.data.synth_kinds import SYNTH_KINDS, write_synth_kind


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="data set tools")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    s = sub.add_parser("synth", help="write a synthetic task set (by default the embedded default's data)")
    s.add_argument("--out", required=True, help="output directory (train.jsonl, test.jsonl, images/)")
    s.add_argument(
        "--kind",
        choices=sorted(SYNTH_KINDS),
        default="image",
        help="image = multimodal questions (default); text = arithmetic and word problems in graded levels",
    )
    s.add_argument("--n-train", type=int, default=512, help="training samples (default 512)")
    s.add_argument("--n-test", type=int, default=128, help="held-out samples (default 128)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--image-size", type=int, default=56, help="image side in pixels, --kind image (default 56)")
    s.add_argument(
        "--instruction", action="store_true", help="append the <think>/<answer> format instruction to each prompt"
    )
    s.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    if args.kind == "image":
        extra = {"image_size": args.image_size, "instruction": args.instruction}
    else:
        extra = {"instruction": " Please" + INSTRUCTION if args.instruction else ""}
    paths = write_synth_kind(args.kind, args.out, args.n_train, args.n_test, args.seed, **extra)
    print(f"wrote {args.n_train} training and {args.n_test} held-out samples: {paths['train']}, {paths['test']}")
    return 0
