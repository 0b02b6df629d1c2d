"""What users would pick instead of harmo_fast, as benchmark entries: `torch.compile` of the same
torch code, and the optional packages (Liger-Kernel, TRL) when they are installed.

An entry that cannot run here is skipped with the reason (`pytest -rs` lists them), so a missing
package or a GPU-only path shows as a named gap in the ratio table, never as a silent omission.
LLM shapes (T = 4096 tokens, V = 151,936 vocabulary) are opt-in: `HARMO_BENCH_LLM=1`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType

import pytest
import torch

LLM_SHAPES = os.environ.get("HARMO_BENCH_LLM", "") == "1"


def compiled(fn: Callable) -> Callable:
    """`torch.compile` of `fn` with static shapes; the first call compiles, so benchmarks run it once
    before timing (warm-up) and the memory subprocess does the same (`peak_extra_bytes(warmup=True)`)."""
    return torch.compile(fn, dynamic=False)


def optional_module(name: str) -> tuple[ModuleType | None, str]:
    """The module, or None and why it is absent."""
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # an installed package can still fail to import (missing extra, wrong torch)
        return None, f"{name} not importable here ({type(exc).__name__}: {exc})"


def skip_unless(available: bool, reason: str) -> None:
    """Skip the calling benchmark with `reason` unless `available`."""
    if not available:
        pytest.skip(reason)
