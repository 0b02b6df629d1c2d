"""Throughput of a benchmark as an extra field of its report."""

from __future__ import annotations


def record_rate(benchmark, key: str, items: int, digits: int | None = None) -> None:
    """`items` per second over the mean timed round, stored as `extra_info[key]`. Nothing is stored
    under `--benchmark-disable`, where the callable runs once untimed and there are no statistics."""
    if benchmark.stats is None:
        return
    benchmark.extra_info[key] = round(items / benchmark.stats.stats.mean, digits)
