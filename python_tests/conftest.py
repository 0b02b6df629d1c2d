"""Test session setup. Triton must see TRITON_INTERPRET=1 before it is first imported, so that its
kernels run (slowly) on CPU tensors on machines without a GPU."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
