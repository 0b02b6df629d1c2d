"""The compiled core as built in this tree: _C imports and reports its OpenMP support; with nvcc on
PATH, _C_cuda was built, imports, carries the ops and explains a missing GPU; backend reporting and
resolution errors are clear."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

import harmo_fast as harmo
from harmo_fast import _dispatch, _native


def test_cpu_module_imports_with_the_ops() -> None:
    mod = _native.cpu_module()
    for name in ("group_advantages", "length_penalty", "group_layout"):
        assert callable(getattr(mod, name)), name
    assert isinstance(mod.has_openmp, bool)
    assert mod.max_threads() >= 1


def test_openmp_follows_omp_num_threads(tmp_path) -> None:
    code = "from harmo_fast import _C; print(int(_C.has_openmp), _C.max_threads())"
    # The child must import the harmo_fast this process tests (installed or in-tree), not whatever
    # the current directory happens to hold.
    package_root = os.path.dirname(os.path.dirname(harmo.__file__))
    env = {**os.environ, "OMP_NUM_THREADS": "3", "PYTHONPATH": package_root}
    out = subprocess.check_output([sys.executable, "-c", code], env=env, text=True, cwd=tmp_path)
    has_openmp, threads = out.split()
    # Without OpenMP the module says so and runs one thread; with it, the runtime honours the variable.
    assert int(threads) == (3 if has_openmp == "1" else 1)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: the CUDA module is not built here")
def test_cuda_module_built_and_explains_a_missing_device() -> None:
    assert _native.module_status("_C_cuda") == "available"
    mod = _native.cuda_module()
    for name in ("group_advantages", "length_penalty"):
        assert callable(getattr(mod, name)), (
            f"_C_cuda lacks {name}: rebuild with HARMO_CUDA=ON scripts/build_inplace.sh"
        )
    count, why = mod.device_count()
    status = harmo.available_backends()["cuda"]
    if count == 0:
        assert status.startswith("compiled CUDA module present, but no CUDA device") and why in status
    else:
        assert status == "available"


def test_available_backends_content() -> None:
    status = harmo.available_backends()
    assert list(status) == ["torch", "cpu", "triton", "cuda"]
    assert status["torch"] == "available"
    assert status["cpu"] == "available"
    if not torch.cuda.is_available():
        assert not status["cuda"].startswith("available")
        assert status["triton"].startswith("available (interpreter") == (os.environ.get("TRITON_INTERPRET") == "1")


def test_resolve_backend_errors_and_auto() -> None:
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert _dispatch.resolve_backend("auto", cpu, "op") == "cpu"
    assert _dispatch.resolve_backend("torch", cpu, "op") == "torch"
    with pytest.raises(ValueError, match="op: backend must be one of"):
        _dispatch.resolve_backend("fast", cpu, "op")
    with pytest.raises(ValueError, match="op: backend 'cpu' needs CPU tensors"):
        _dispatch.resolve_backend("cpu", meta, "op")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="op: backend 'cuda' is unavailable"):
            _dispatch.resolve_backend("cuda", cpu, "op")
        with pytest.raises(RuntimeError, match="group_advantages: backend 'cuda' is unavailable"):
            harmo.group_advantages(torch.zeros(4), 2, backend="cuda")
