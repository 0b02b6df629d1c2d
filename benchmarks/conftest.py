"""Benchmark session hooks: after the run, print one table per benchmark group with each entry's
median time as a ratio to the group's baseline(s), the form the README and closing notes quote.
Medians, not means: on a shared CPU a few preempted rounds would swing a mean.

A benchmark marks itself as a baseline with `benchmark.extra_info["baseline"] = True`."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list] = {}
    for bench in session.benchmarks:
        if bench.stats is None:
            continue
        groups.setdefault(bench.group or bench.fullname, []).append(bench)
    tr = terminalreporter
    tr.section("harmo_fast speed ratios (baseline median / entry median; >1 = faster than baseline)")
    for group, benches in groups.items():
        baselines = [b for b in benches if b.extra_info.get("baseline")]
        tr.write_line(f"\n[{group}]")
        for b in sorted(benches, key=lambda b: b.stats.median):
            ratios = "  ".join(
                f"vs {_entry(base)}: {base.stats.median / b.stats.median:6.2f}x" for base in baselines if base is not b
            )
            extra = {k: v for k, v in b.extra_info.items() if k != "baseline"}
            tail = f"  {extra}" if extra else ""
            tr.write_line(f"  {_entry(b):40s} {b.stats.median * 1e6:12.1f} us  {ratios}{tail}")


def _entry(bench) -> str:
    """The entry's parameter id (e.g. `harmo_cpu-fp32-beta0`), its group already names the workload."""
    name = bench.name
    return name[name.index("[") + 1 : -1] if "[" in name else name
