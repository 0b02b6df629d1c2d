"""The trailing mean that turns noisy per-step curves into readable ones (per-run plots and
`harmo compare`); plain Python, so the light `harmo` sub-commands can import it."""

from __future__ import annotations

# Trailing-mean window of the per-run plots and the default of `harmo compare --smooth`.
SMOOTH = 10


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last `window` values (fewer at the start); window 1 returns a copy."""
    if window < 1:
        raise ValueError(f"smoothing window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
