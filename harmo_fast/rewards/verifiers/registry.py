"""The registry of rule verifiers: task type -> one `Verifier` instance.

Verifier modules register their classes with `@register`; a user module can register more (pass
its name to `VerifierPool(preload=...)` so worker processes see it too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from harmo_fast.rewards.verifiers.base import Verifier

_REGISTRY: dict[str, Verifier] = {}

V = TypeVar("V", bound=type[Verifier])


def register(*task_types: str) -> Callable[[V], V]:
    """Class decorator: register one instance of the verifier under each of `task_types`."""
    if not task_types:
        raise ValueError("register: give at least one task type")

    def deco(cls: V) -> V:
        instance = cls()
        for name in task_types:
            _REGISTRY[name] = instance
        return cls

    return deco


def get_verifier(task_type: str) -> Verifier:
    """The verifier registered for `task_type`; ValueError listing the valid ones otherwise."""
    try:
        return _REGISTRY[task_type]
    except (KeyError, TypeError):
        raise ValueError(f"task_type must be one of {sorted(_REGISTRY)}, got {task_type!r}") from None


def registered_task_types() -> list[str]:
    """Every task type with a registered verifier, sorted."""
    return sorted(_REGISTRY)
