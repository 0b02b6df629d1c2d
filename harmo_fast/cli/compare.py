"""`harmo compare RUN_DIR RUN_DIR ... [--out compare.png] [--smooth 10]`: one figure overlaying the
runs' reward, training accuracy and response-length curves (e.g. length penalty on vs off), and a
table of their held-out accuracies and GRPO gains."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harmo_fast.trainer.smoothing import SMOOTH

EVALS = (("eval_start.json", "start"), ("eval_warmup.json", "warm-up"), ("eval_end.json", "end"))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help="overlay the curves of several runs", description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="run directories written by harmo train")
    p.add_argument("--out", type=Path, default=Path("compare.png"), help="the PNG to write (default compare.png)")
    p.add_argument(
        "--smooth", type=int, default=SMOOTH, help=f"trailing mean over this many steps (1: raw; default {SMOOTH})"
    )
    p.set_defaults(func=run)


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summary_table(run_dirs: list[Path]) -> str:
    """Held-out accuracy at start / after warm-up / at the end, GRPO's paired gain, per run."""
    width = max(len("run"), *(len(d.name) for d in run_dirs))
    lines = [
        f"{'run':<{width}}  " + "  ".join(f"{label:>8}" for _, label in EVALS) + "  GRPO gain (SE)",
        "-" * (width + 46),
    ]
    for d in run_dirs:
        accs = [_read_json(d / name) for name, _ in EVALS]
        cells = [f"{r['accuracy']:8.1%}" if r else f"{'-':>8}" for r in accs]
        gain = _read_json(d / "grpo_gain.json")
        gain_cell = f"{gain['gain']:+.1%} ({gain['stderr']:.1%})" if gain else "-"
        lines.append(f"{d.name:<{width}}  " + "  ".join(cells) + f"  {gain_cell}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # matplotlib and torch: every sub-command module is imported to build the parser (harmo data, harmo backends)
    from harmo_fast.trainer.plots import write_comparison

    missing = [str(d) for d in args.runs if not (d / "metrics.jsonl").is_file()]
    if missing:
        print(f"harmo compare: no metrics.jsonl in {', '.join(missing)} (pass run directories of harmo train)")
        return 2
    if args.smooth < 1:
        print(f"harmo compare: --smooth must be >= 1, got {args.smooth}")
        return 2
    path = write_comparison(args.runs, args.out, smooth=args.smooth)
    print(summary_table(args.runs))
    print(f"curves: {path}")
    return 0
