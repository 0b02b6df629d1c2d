"""Every Python copy of a C++ code table equals what the compiled modules export (the copies stay
in Python so the torch backend works without a compiled module)."""

from __future__ import annotations

import pytest

from harmo_fast import _native
from harmo_fast.ops._grpo_layout import BadInput, RowSlot
from harmo_fast.ops.group_advantages import SCALES
from harmo_fast.ops.length_penalty import SHAPES
from harmo_fast.ops.token_kl import KL_ESTIMATORS

PYTHON_TABLES = {
    "dtype_codes": dict(_native.DTYPE_CODES),
    "kl_estimator_codes": {name: est.code for name, est in KL_ESTIMATORS.items()},
    "advantage_scale_codes": dict(SCALES),
    "length_penalty_shape_codes": {name: shape.code for name, shape in SHAPES.items()},
    "grpo_row_slot_codes": {slot.name.lower(): slot.value for slot in RowSlot},
    "grpo_bad_input_codes": {flag.name.lower(): flag.value for flag in BadInput},
}

MODULES = ["_C"] + (["_C_cuda"] if _native.module_status("_C_cuda") == "available" else [])


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("table", sorted(PYTHON_TABLES))
def test_python_table_equals_the_compiled_export(module: str, table: str) -> None:
    mod = _native.cpu_module() if module == "_C" else _native.cuda_module()
    assert dict(getattr(mod, table)) == PYTHON_TABLES[table]


def test_every_torch_dtype_maps_to_a_known_code() -> None:
    assert set(_native.TORCH_DTYPE_NAMES.values()) <= set(_native.DTYPE_CODES)
