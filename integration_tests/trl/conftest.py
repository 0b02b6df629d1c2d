"""Fixtures for the tests against the real TRL: a tiny random Qwen2 and a word-level tokenizer,
both built in code and saved to a temporary folder (TRL builds the reference model from a path),
and a small arithmetic prompt set. Run in a venv with trl installed: `pytest integration_tests/trl`."""

from __future__ import annotations

import importlib.util
import os

# The Triton kernels, when triton is installed, run in interpreter mode on this CPU-only machine.
if importlib.util.find_spec("triton") is not None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

pytest.importorskip("trl")

from tiny_setup import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding a tiny random Qwen2ForCausalLM and its tokenizer."""
    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_qwen2")))
