"""PNG plots of a run's metrics.jsonl (rewards, accuracy, response length and KL per step), and one
figure overlaying several runs' curves (`harmo compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harmo_fast.trainer.metrics import read_metrics
from harmo_fast.trainer.smoothing import SMOOTH, moving_average

# file name -> (title, y label, series as (metric key or key prefix, legend label))
PLOTS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "rewards.png": (
        "Rewards (batch mean)",
        "reward",
        [
            ("reward/total_mean", "total"),
            ("reward/hybrid_mean", "hybrid"),
            ("reward/length_mean", "length"),
            ("reward/format_mean", "format"),
        ],
    ),
    "accuracy.png": (
        "Training accuracy",
        "accuracy",
        [("accuracy", "all"), ("accuracy/*", ""), ("format_compliance", "format compliance")],
    ),
    "response_length.png": (
        "Response length (tokens)",
        "tokens",
        [("length/mean", "mean"), ("length/min", "min"), ("length/max", "max")],
    ),
    "kl.png": ("KL to the frozen reference (0 when beta = 0: no reference)", "KL", [("kl", "kl")]),
}


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def write_plots(metrics_path: str | Path, out_dir: str | Path, smooth: int = SMOOTH) -> list[Path]:
    """Write the PNGs of PLOTS into `out_dir`: each series as a `smooth`-step trailing mean over
    its faint raw per-step curve (per-step batch means are noisy); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    keys = sorted({k for r in records for k in r})
    written = []
    for name, (title, ylabel, series) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (key, label) in enumerate(series):
            matches = [k for k in keys if k.startswith(key[:-1])] if key.endswith("*") else [key]
            for k in matches:
                xs, ys = _series(records, k)
                if not xs:
                    continue
                # the first series is the plot's headline: drawn thicker, on top
                width, z = (2.4, 3) if i == 0 else (1.4, 2)
                (line,) = ax.plot(
                    xs, moving_average(ys, smooth), lw=width, zorder=z, label=label or k.split("/", 1)[-1]
                )
                if smooth > 1:
                    ax.plot(xs, ys, color=line.get_color(), lw=0.7, alpha=0.25, zorder=1)
        ax.set_title(title + (f", {smooth}-step mean over the raw steps" if smooth > 1 else ""), fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        path = Path(out_dir) / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


# (metric key, panel title) of the comparison figure, one panel each.
COMPARE_PANELS: list[tuple[str, str]] = [
    ("reward/total_mean", "Total reward (batch mean)"),
    ("accuracy", "Training accuracy"),
    ("length/mean", "Mean response length (tokens)"),
    ("length/min", "Shortest response (tokens)"),
]


def write_comparison(run_dirs: list[Path], out_path: str | Path, smooth: int = SMOOTH) -> Path:
    """One PNG with a panel per COMPARE_PANELS metric, a curve per run (named after its directory)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(Path(d).name, read_metrics(Path(d) / "metrics.jsonl")) for d in run_dirs]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (key, title) in zip(axes.flat, COMPARE_PANELS):
        for name, records in runs:
            xs, ys = _series(records, key)
            if xs:
                ax.plot(xs, moving_average(ys, smooth), label=name)
        ax.set_title(title + (f", {smooth}-step mean" if smooth > 1 else ""), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
