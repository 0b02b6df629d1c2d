"""Rule verifiers, one per task type (see `registry`).

Importing the package registers the built-in families: each family's module imports `register`
from `registry` (never from this package) and registers its classes on import."""

from __future__ import annotations

from harmo_fast.rewards.verifiers import (  # noqa: F401 (imported for their registrations)
    counting,
    math,
    multiple_choice,
    numeric,
    open_ended,
    text,
    yes_no,
)
from harmo_fast.rewards.verifiers.base import Verifier
from harmo_fast.rewards.verifiers.registry import get_verifier, register, registered_task_types

__all__ = ["Verifier", "get_verifier", "register", "registered_task_types"]
