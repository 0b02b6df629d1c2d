"""group_advantages: the reference against hand-computed values, every available backend against the
reference (random shapes/dtypes, ragged unordered ids, NaN, singletons), exact zeros for all-equal
groups, torch.compile, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import harmo_fast as harmo
from harmo_fast.ops.group_advantages import group_advantages_reference as reference

BACKENDS = [b for b, why in harmo.available_backends().items() if why.startswith("available") and b != "cuda"]
SCALES = ("none", "group", "batch")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
NAN = float("nan")


def _close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


# --- the reference against hand-computed values ---


def test_reference_hand_computed_none_group_batch() -> None:
    r = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0])
    torch.testing.assert_close(reference(r, 4), torch.tensor([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0]))
    std = math.sqrt(5.0 / 3.0)  # unbiased std of 1, 2, 3, 4
    want = torch.tensor([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0]) / (std + 1e-6)
    torch.testing.assert_close(reference(r, 4, scale="group"), want)
    pop = math.sqrt(5.0 / 4.0)
    torch.testing.assert_close(
        reference(r, 4, scale="group", unbiased=False, eps=0.0), torch.tensor([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0]) / pop
    )
    batch_std = torch.tensor([1.0, 2, 3, 4, 5, 5, 5, 5], dtype=torch.float64).std().item()
    torch.testing.assert_close(
        reference(r, 4, scale="batch", eps=1e-4), torch.tensor([-1.5, -0.5, 0.5, 1.5, 0, 0, 0, 0]) / (batch_std + 1e-4)
    )


def test_reference_hand_computed_nan_and_singletons() -> None:
    r = torch.tensor([1.0, NAN, 3.0, 7.0, NAN, NAN])
    ids = torch.tensor([0, 0, 0, 1, 1, 2])
    # group 0: mean of (1, 3) = 2; group 1: a single valid value; group 2: only NaN.
    torch.testing.assert_close(reference(r, group_ids=ids), torch.tensor([-1.0, 0, 1.0, 0, 0, 0]))
    s = math.sqrt(2.0)
    torch.testing.assert_close(
        reference(r, group_ids=ids, scale="group"), torch.tensor([-1 / (s + 1e-6), 0, 1 / (s + 1e-6), 0, 0, 0])
    )


# --- every backend against the reference ---


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", SCALES)
def test_hand_example_every_backend(backend: str, scale: str) -> None:
    r = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.25, NAN, 0.75, 0.5])
    _close(harmo.group_advantages(r, 4, scale=scale, backend=backend), reference(r, 4, scale=scale), torch.float32)


@st.composite
def _batches(draw):
    num_groups = draw(st.integers(1, 8))
    size = draw(st.sampled_from([1, 2, 3, 8, 16, 19]))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    nan_frac = draw(st.sampled_from([0.0, 0.0, 0.2]))
    return num_groups, size, dtype, seed, nan_frac


@settings(max_examples=12, deadline=None)
@given(batch=_batches(), scale=st.sampled_from(SCALES), unbiased=st.booleans(), by_ids=st.booleans())
def test_backends_match_reference_random(batch, scale: str, unbiased: bool, by_ids: bool) -> None:
    num_groups, size, dtype, seed, nan_frac = batch
    gen = torch.Generator().manual_seed(seed)
    n = num_groups * size
    r = (torch.randn(n, generator=gen) * 3 + 1).to(dtype)
    r[torch.rand(n, generator=gen) < nan_frac] = NAN
    if by_ids:  # ragged, unordered, arbitrary (negative, sparse) ids
        ids = torch.randint(-5, num_groups, (n,), generator=gen) * 1000
        kwargs = {"group_ids": ids}
    else:
        kwargs = {"group_size": size}
    want = reference(r, scale=scale, unbiased=unbiased, **kwargs)
    for backend in BACKENDS:
        _close(harmo.group_advantages(r, scale=scale, unbiased=unbiased, backend=backend, **kwargs), want, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ragged_ids_equal_a_permutation_of_contiguous_groups(backend: str) -> None:
    sizes = [1, 5, 2, 9, 3]
    r = torch.randn(sum(sizes))
    ids = torch.repeat_interleave(torch.tensor([40, -3, 7, 1000, 2]), torch.tensor(sizes))
    perm = torch.randperm(r.numel())
    for scale in SCALES:
        direct = harmo.group_advantages(r, group_ids=ids, scale=scale, backend=backend)
        shuffled = harmo.group_advantages(r[perm], group_ids=ids[perm].to(torch.int32), scale=scale, backend=backend)
        _close(shuffled, direct[perm], torch.float32)
    assert direct[0] == 0  # the singleton group


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [3, 8])  # the general and the fixed-size CPU paths
def test_all_equal_groups_are_exactly_zero(backend: str, dtype: torch.dtype, size: int) -> None:
    big = 6e4 + 0.1 if dtype == torch.float16 else 1e6 + 0.1  # fp16 tops out at 65504
    values = torch.tensor([0.1, 1.0 / 3.0, big, -2.7, 0.7])
    r = values.repeat_interleave(size).to(dtype)
    r[size] = NAN  # NaN inside an otherwise constant group changes nothing
    for scale in SCALES:
        out = harmo.group_advantages(r, size, scale=scale, eps=0.0, backend=backend)
        assert torch.equal(out, torch.zeros_like(out)), (scale, out)
        ids = torch.arange(values.numel()).repeat_interleave(size).flip(0)
        out = harmo.group_advantages(r, group_ids=ids, scale=scale, backend=backend)
        assert torch.equal(out, torch.zeros_like(out)), (scale, out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_singletons_nan_only_and_empty(backend: str) -> None:
    r = torch.tensor([3.0, NAN, -1.0, 2.0])
    for scale in SCALES:
        assert torch.equal(harmo.group_advantages(r, 1, scale=scale, backend=backend), torch.zeros(4))
        assert torch.equal(
            harmo.group_advantages(torch.full((4,), NAN), 2, scale=scale, backend=backend), torch.zeros(4)
        )
        empty = harmo.group_advantages(torch.empty(0), 4, scale=scale, backend=backend)
        assert empty.shape == (0,) and empty.dtype == torch.float32
        empty = harmo.group_advantages(torch.empty(0), group_ids=torch.empty(0, dtype=torch.int64), backend=backend)
        assert empty.shape == (0,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_and_requires_grad_inputs(backend: str) -> None:
    base = torch.randn(64)
    strided = base[::2]
    assert not strided.is_contiguous()
    _close(harmo.group_advantages(strided, 8, backend=backend), reference(strided.contiguous(), 8), torch.float32)
    ids = torch.arange(64)[::2] % 5
    _close(
        harmo.group_advantages(strided, group_ids=ids, backend=backend),
        reference(strided, group_ids=ids),
        torch.float32,
    )
    leaf = torch.randn(16, requires_grad=True)
    out = harmo.group_advantages(leaf, 4, scale="group", backend=backend)
    assert not out.requires_grad
    _close(out, reference(leaf.detach(), 4, scale="group"), torch.float32)


def test_auto_picks_the_compiled_core_on_cpu() -> None:
    r = torch.randn(32)
    assert torch.equal(harmo.group_advantages(r, 8), harmo.group_advantages(r, 8, backend="cpu"))


def test_torch_compile_fullgraph_matches_eager() -> None:
    def step(rewards: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        a = harmo.group_advantages(rewards, 4, scale="group", backend="cpu")
        b = harmo.group_advantages(rewards, group_ids=ids, backend="cpu")
        return a * 2 + b

    r, ids = torch.randn(16), torch.randint(0, 3, (16,))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(r, ids), step(r, ids))


def test_meta_tensors_give_the_output_shape() -> None:
    out = harmo.group_advantages(torch.empty(12, device="meta"), 4)
    assert out.shape == (12,) and out.device.type == "meta" and out.dtype == torch.float32


# --- bad input ---


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rewards": torch.randn(2, 4), "group_size": 4}, ValueError, "rewards must be 1-D"),
        ({"rewards": torch.arange(8), "group_size": 4}, TypeError, "rewards must have dtype"),
        ({"rewards": torch.randn(8, dtype=torch.float64), "group_size": 4}, TypeError, "rewards must have dtype"),
        ({"rewards": [1.0, 2.0], "group_size": 2}, TypeError, "rewards must be a torch.Tensor"),
        ({"rewards": torch.randn(8), "group_size": 3}, ValueError, "does not divide"),
        ({"rewards": torch.randn(8), "group_size": 0}, ValueError, "group_size must be positive"),
        ({"rewards": torch.randn(8), "group_size": -4}, ValueError, "group_size must be positive"),
        ({"rewards": torch.randn(8), "group_size": 4.0}, TypeError, "group_size must be an int"),
        ({"rewards": torch.randn(8)}, ValueError, "exactly one of group_size"),
        (
            {"rewards": torch.randn(8), "group_size": 4, "group_ids": torch.zeros(8, dtype=torch.int64)},
            ValueError,
            "exactly one of group_size",
        ),
        ({"rewards": torch.randn(8), "group_ids": torch.zeros(8)}, TypeError, "group_ids must have dtype"),
        (
            {"rewards": torch.randn(8), "group_ids": torch.zeros(7, dtype=torch.int64)},
            ValueError,
            "group_ids must have shape",
        ),
        (
            {"rewards": torch.randn(8), "group_ids": torch.zeros(8, 1, dtype=torch.int64)},
            ValueError,
            "group_ids must be 1-D",
        ),
        (
            {"rewards": torch.randn(8), "group_ids": torch.zeros(8, dtype=torch.int64, device="meta")},
            ValueError,
            "group_ids must be on cpu",
        ),
        ({"rewards": torch.randn(8), "group_size": 4, "scale": "std"}, ValueError, "scale must be one of"),
        ({"rewards": torch.randn(8), "group_size": 4, "eps": -1.0}, ValueError, "eps must be"),
        ({"rewards": torch.randn(8), "group_size": 4, "backend": "gpu"}, ValueError, "backend must be one of"),
        (
            {"rewards": torch.randn(8, device="meta"), "group_size": 4, "backend": "cpu"},
            ValueError,
            "needs CPU tensors",
        ),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        harmo.group_advantages(**kwargs)


UIDS = ["b7", "a1", "b7", "c", "a1", "b7", "c", "zz"]  # verl's index: one uid string per response
CODES = torch.tensor([0, 1, 0, 2, 1, 0, 2, 3])  # the same grouping, by first appearance


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "ids",
    [
        np.array(UIDS, dtype=object),  # verl's non_tensor_batch["uid"]
        np.array(UIDS),  # numpy unicode array
        UIDS,
        tuple((u, 1) for u in UIDS),  # any hashable ids
        np.array([7, -3, 7, 100, -3, 7, 100, 5]),  # numpy integers pass through
        [7.5, -3.0, 7.5, 1e9, -3.0, 7.5, 1e9, 0.0],
    ],
    ids=["numpy_object", "numpy_str", "list_str", "tuples", "numpy_int", "floats"],
)
def test_group_ids_from_numpy_and_sequences(backend: str, ids) -> None:
    r = torch.tensor([1.0, 0.0, 0.5, 2.0, 1.0, 0.25, 3.0, 4.0])
    want = harmo.group_advantages(r, group_ids=CODES, scale="group", backend=backend)
    got = harmo.group_advantages(r, group_ids=ids, scale="group", backend=backend)
    torch.testing.assert_close(got, want)
    assert got[7].item() == 0.0 and got[0].item() != 0.0  # a singleton group; a real one


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        ("abcdefgh", TypeError, "not a string"),
        (["a", "b", float("nan"), "a", "b", "c", "d", "e"], ValueError, r"group_ids\[2\] is NaN"),
        ([[0], [1], [0], [1], [0], [1], [0], [1]], TypeError, r"group_ids\[0\] is not hashable"),
        (np.zeros((8, 1), dtype=object), ValueError, "group_ids must be 1-D"),
        (["a"] * 7, ValueError, "group_ids must have shape"),
        (5, TypeError, "group_ids must be a tensor, a numpy array or a sequence"),
    ],
)
def test_bad_group_ids(ids, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        harmo.group_advantages(torch.randn(8), group_ids=ids)


@pytest.mark.parametrize("span", ["small", "huge"])  # counting sort / comparison sort in the core
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_group_layout_is_a_stable_sort_by_id(span: str, dtype: torch.dtype) -> None:
    from harmo_fast.ops import _groups

    ids = torch.randint(-4, 6, (50,))
    if span == "huge":
        info = torch.iinfo(dtype)
        ids = torch.where(ids < 0, info.min + ids + 4, torch.where(ids > 3, info.max - ids, ids * 1000))
    ids = ids.to(dtype)
    got = _groups.layout(50, None, ids)
    sorted_ids, order = torch.sort(ids, stable=True)
    counts = torch.unique_consecutive(sorted_ids, return_counts=True)[1]
    assert got.size == 0 and got.num_groups == counts.numel()
    assert torch.equal(got.order, order)
    assert torch.equal(got.offsets, torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
@pytest.mark.parametrize("grouping", ["size", "ids"])
def test_opcheck_group_advantages_op(backend: str, grouping: str) -> None:
    from harmo_fast.ops.group_advantages import _group_advantages_op

    rewards = torch.randn(8)
    size, ids = (4, None) if grouping == "size" else (None, torch.tensor([0, 1, 0, 2, 1, 0, 2, 2]))
    torch.library.opcheck(_group_advantages_op, (rewards, size, ids, "group", 1e-6, True, backend))
