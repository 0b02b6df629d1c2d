"""length_penalty: the reference against hand-computed values (all three shapes, the boundary
d == tau), every available backend against the reference (random, ragged unordered ids), groups
without a correct response, torch.compile, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import harmo_fast as harmo
from harmo_fast.ops.length_penalty import length_penalty_reference as reference

BACKENDS = [b for b, why in harmo.available_backends().items() if why.startswith("available") and b != "cuda"]
SHAPES = ("linear", "exp", "step")


def _equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7)


# One group of 4 (anchor L* = 10: correct lengths 10 and 14) and one with no correct response.
LENGTHS = torch.tensor([10, 5, 8, 12, 14, 3, 3, 9, 1])
CORRECT = torch.tensor([True, False, False, False, True, False, False, False, False])
IDS = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_reference_hand_computed_shapes() -> None:
    # L=5: d = 0.5; L=8: d = 0.2; L=12 (longer than L*) and correct rows: 0; group 1: 0.
    linear = [0, -0.5 * min(1, 0.5 / 0.5), -0.5 * (0.2 / 0.5), 0, 0, 0, 0, 0, 0]
    exp = [0, -0.5 * (1 - math.exp(-1.0)), -0.5 * (1 - math.exp(-0.4)), 0, 0, 0, 0, 0, 0]
    step = [0, -0.5, 0, 0, 0, 0, 0, 0, 0]  # d = 0.5 == tau counts, d = 0.2 does not
    for shape, want in (("linear", linear), ("exp", exp), ("step", step)):
        _equal(reference(LENGTHS, CORRECT, group_ids=IDS, shape=shape), torch.tensor(want))
    _equal(
        reference(LENGTHS, CORRECT, group_ids=IDS, p_max=1.0, tau=0.25), torch.tensor([0, -1.0, -0.8, 0, 0, 0, 0, 0, 0])
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_hand_example_every_backend(backend: str, shape: str) -> None:
    want = reference(LENGTHS, CORRECT, group_ids=IDS, shape=shape)
    _equal(harmo.length_penalty(LENGTHS, CORRECT, group_ids=IDS, shape=shape, backend=backend), want)
    perm = torch.randperm(9)
    shuffled = harmo.length_penalty(
        LENGTHS[perm], CORRECT[perm], group_ids=(IDS[perm] * 77 - 5).to(torch.int32), shape=shape, backend=backend
    )
    _equal(shuffled, want[perm])


@pytest.mark.parametrize("backend", BACKENDS)
def test_group_ids_as_uid_strings(backend: str) -> None:
    uids = ["p0", "p0", "p0", "p0", "p0", "p1", "p1", "p1", "p1"]  # the grouping of IDS
    want = harmo.length_penalty(LENGTHS, CORRECT, group_ids=IDS, backend=backend)
    _equal(harmo.length_penalty(LENGTHS, CORRECT, group_ids=uids, backend=backend), want)
    assert want[1].item() < 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_boundary_d_equal_tau(backend: str) -> None:
    # L* = 8: L = 6 gives d = 0.25 exactly, L = 4 gives d = 0.5 exactly.
    lengths = torch.tensor([8, 6, 4, 7], dtype=torch.int32)
    correct = torch.tensor([True, False, False, False])
    step = harmo.length_penalty(lengths, correct, 4, p_max=0.3, tau=0.25, shape="step", backend=backend)
    _equal(step, torch.tensor([0.0, -0.3, -0.3, 0.0]))
    linear = harmo.length_penalty(lengths, correct, 4, p_max=0.3, tau=0.5, shape="linear", backend=backend)
    _equal(linear, torch.tensor([0.0, -0.15, -0.3, -0.3 * 0.25]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("anchor", "tau"), [(10, 0.1), (10, 0.3), (10, 0.7), (100, 0.01), (5, 0.2), (3, 1.0 / 3.0)])
def test_boundary_d_equal_tau_non_dyadic(backend: str, anchor: int, tau: float) -> None:
    # Every length below the anchor, so one of them sits on d == tau in float64 (or next to it), with a
    # tau that fp32 cannot hold: each backend decides the step as the float64 reference does.
    lengths = torch.arange(anchor + 1, dtype=torch.int64)
    correct = lengths == anchor
    for shape in SHAPES:
        want = reference(lengths, correct, group_size=anchor + 1, p_max=0.3, tau=tau, shape=shape)
        got = harmo.length_penalty(lengths, correct, anchor + 1, p_max=0.3, tau=tau, shape=shape, backend=backend)
        assert torch.equal(got, want), shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_at_anchor_10_length_9_tau_0_1(backend: str) -> None:
    # d = 1/10 == tau in float64, but below float32(0.1) = 0.100000001: penalised.
    lengths, correct = torch.tensor([10, 9]), torch.tensor([True, False])
    got = harmo.length_penalty(lengths, correct, 2, tau=0.1, shape="step", backend=backend)
    _equal(got, torch.tensor([0.0, -0.5]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_anchor_zero_anchor_and_ties(backend: str) -> None:
    lengths = torch.tensor([5, 2, 0, 3, 4, 4, 2, 9])
    correct = torch.tensor([False, False, True, False, True, False, True, False])
    # group 0: no correct -> 0; group 1: a correct response of length 0 -> nothing is shorter;
    # group 2 (4, 4, 2, 9 with correct 4 and 2): L* = 2, so nothing incorrect is shorter.
    out = harmo.length_penalty(lengths, correct, group_ids=torch.tensor([0, 0, 1, 1, 2, 2, 2, 2]), backend=backend)
    assert torch.equal(out, torch.zeros(8))
    assert not torch.signbit(out).any()  # +0, never -0
    empty = harmo.length_penalty(
        torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.bool), 4, backend=backend
    )
    assert empty.shape == (0,) and empty.dtype == torch.float32


@settings(max_examples=12, deadline=None)
@given(
    num_groups=st.integers(1, 8),
    size=st.sampled_from([1, 2, 5, 8, 16]),
    seed=st.integers(0, 2**16),
    shape=st.sampled_from(SHAPES),
    by_ids=st.booleans(),
    int32=st.booleans(),
    tau=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    p_max=st.sampled_from([0.0, 0.5, 2.0]),
)
def test_backends_match_reference_random(
    num_groups: int, size: int, seed: int, shape: str, by_ids: bool, int32: bool, tau: float, p_max: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = num_groups * size
    lengths = torch.randint(0, 40, (n,), generator=gen).to(torch.int32 if int32 else torch.int64)
    correct = torch.rand(n, generator=gen) < 0.3
    kwargs = {"group_ids": torch.randint(-3, num_groups, (n,), generator=gen) * 11} if by_ids else {"group_size": size}
    want = reference(lengths, correct, p_max=p_max, tau=tau, shape=shape, **kwargs)
    for backend in BACKENDS:
        _equal(
            harmo.length_penalty(lengths, correct, p_max=p_max, tau=tau, shape=shape, backend=backend, **kwargs), want
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_inputs(backend: str) -> None:
    lengths, correct = torch.randint(0, 30, (64,)), torch.rand(64) < 0.4
    out = harmo.length_penalty(lengths[::2], correct[::2], 8, backend=backend)
    _equal(out, reference(lengths[::2].contiguous(), correct[::2].contiguous(), 8))


def test_torch_compile_fullgraph_matches_eager() -> None:
    def step(lengths: torch.Tensor, correct: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        a = harmo.length_penalty(lengths, correct, 4, shape="exp", backend="cpu")
        return a + harmo.length_penalty(lengths, correct, group_ids=ids, backend="cpu")

    lengths, correct, ids = torch.randint(0, 20, (16,)), torch.rand(16) < 0.4, torch.randint(0, 3, (16,))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(lengths, correct, ids), step(lengths, correct, ids))


# --- bad input ---

L8, C8 = torch.arange(8), torch.zeros(8, dtype=torch.bool)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lengths": L8.view(2, 4), "correct": C8, "group_size": 4}, ValueError, "lengths must be 1-D"),
        ({"lengths": L8.float(), "correct": C8, "group_size": 4}, TypeError, "lengths must have dtype"),
        ({"lengths": L8, "correct": C8.int(), "group_size": 4}, TypeError, "correct must have dtype"),
        ({"lengths": L8, "correct": C8[:7], "group_size": 4}, ValueError, "correct must have shape"),
        ({"lengths": L8, "correct": C8, "group_size": 3}, ValueError, "does not divide"),
        ({"lengths": L8, "correct": C8, "group_size": 0}, ValueError, "group_size must be positive"),
        ({"lengths": L8, "correct": C8}, ValueError, "exactly one of group_size"),
        (
            {"lengths": L8, "correct": C8, "group_ids": torch.zeros(8, dtype=torch.int16)},
            TypeError,
            "group_ids must have dtype",
        ),
        (
            {"lengths": L8, "correct": C8, "group_ids": torch.zeros(9, dtype=torch.int64)},
            ValueError,
            "group_ids must have shape",
        ),
        ({"lengths": L8, "correct": C8, "group_size": 4, "shape": "cosine"}, ValueError, "shape must be one of"),
        ({"lengths": L8, "correct": C8, "group_size": 4, "p_max": -0.1}, ValueError, "p_max must be"),
        ({"lengths": L8, "correct": C8, "group_size": 4, "tau": 0.0}, ValueError, "tau must be"),
        ({"lengths": L8, "correct": C8, "group_size": 4, "tau": float("nan")}, ValueError, "tau must be"),
        ({"lengths": L8, "correct": C8.to("meta"), "group_size": 4}, ValueError, "one device"),
        (
            {"lengths": L8.to("meta"), "correct": C8.to("meta"), "group_size": 4, "backend": "cpu"},
            ValueError,
            "needs CPU tensors",
        ),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        harmo.length_penalty(**kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_lengths_raise(backend: str) -> None:
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        harmo.length_penalty(
            torch.tensor([3, -1, 2, 2], dtype=torch.int32),
            torch.tensor([True, False, False, False]),
            2,
            backend=backend,
        )


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
@pytest.mark.parametrize("grouping", ["size", "ids"])
def test_opcheck_length_penalty_op(backend: str, grouping: str) -> None:
    from harmo_fast.ops.length_penalty import _length_penalty_op

    lengths = torch.tensor([5, 3, 8, 2, 7, 4, 6, 1])
    correct = torch.tensor([True, False, True, False, False, True, False, False])
    size, ids = (4, None) if grouping == "size" else (None, torch.tensor([0, 1, 0, 2, 1, 0, 2, 2]))
    torch.library.opcheck(_length_penalty_op, (lengths, correct, size, ids, 0.5, 0.5, "linear", backend))
