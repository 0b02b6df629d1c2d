"""harmo_fast: HARMO (hybrid, multi-aspect reward GRPO) kernels, rewards and trainer.

The public ops are imported lazily, so `import harmo_fast.rewards` in a verifier worker process
does not pay for torch, Triton or the compiled core.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "group_advantages": "harmo_fast.ops.group_advantages",
    "token_kl": "harmo_fast.ops.token_kl",
    "grpo_loss": "harmo_fast.ops.grpo_loss",
    "length_penalty": "harmo_fast.ops.length_penalty",
    "selective_log_softmax": "harmo_fast.ops.selective_log_softmax",
    "linear_log_probs": "harmo_fast.ops.linear_log_probs",
    "linear_grpo_loss": "harmo_fast.ops.linear_grpo_loss",
    "available_backends": "harmo_fast._dispatch",
}

__all__ = [
    "__version__",
    "available_backends",
    "group_advantages",
    "grpo_loss",
    "length_penalty",
    "linear_grpo_loss",
    "linear_log_probs",
    "selective_log_softmax",
    "token_kl",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harmo_fast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
