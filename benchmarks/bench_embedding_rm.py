"""Embedding RM throughput (responses scored per second, batch 64) with the bundled
all-MiniLM-L6-v2 on CPU.

    pytest benchmarks/bench_embedding_rm.py --benchmark-only -s

Group embedding-rm: a GRPO-shaped batch of 64 responses (8 prompts x 8 responses, each group
sharing one reference). `EmbeddingRM.score` embeds each distinct text once; the baseline encodes
the 64 answers and the 64 references as two plain sentence-transformers calls, as a naive cosine
reward would. Responses per second are in each entry's extra info.
"""

from __future__ import annotations

import random

import pytest
from _rate import record_rate  # benchmarks/ is on sys.path under pytest

from harmo_fast.rewards.embedding_rm import EmbeddingRM, load_embedder

BATCH = 64
GROUP = 8
WORDS = [
    "the",
    "a",
    "red",
    "blue",
    "small",
    "large",
    "dog",
    "cat",
    "car",
    "house",
    "tree",
    "river",
    "man",
    "woman",
    "child",
    "plays",
    "runs",
    "sits",
    "near",
    "under",
    "over",
    "beside",
]


def grpo_batch(seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    answers, refs = [], []
    for _ in range(BATCH // GROUP):
        ref = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        for _ in range(GROUP):
            answers.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))))
            refs.append(ref)
    return answers, refs


@pytest.fixture(scope="module")
def batch():
    load_embedder(None, "cpu")  # not part of the timings
    return grpo_batch()


def _record(benchmark, baseline: bool = False) -> None:
    record_rate(benchmark, "responses_per_s", BATCH, 1)
    if baseline:
        benchmark.extra_info["baseline"] = True


@pytest.mark.benchmark(group="embedding-rm")
def test_embedding_rm_score(benchmark, batch):
    rm = EmbeddingRM(batch_size=BATCH)
    answers, refs = batch
    out = benchmark.pedantic(rm.score, args=(answers, refs), rounds=5, warmup_rounds=1)
    assert len(out) == BATCH and all(0.0 <= s <= 1.0 for s in out)
    _record(benchmark)


@pytest.mark.benchmark(group="embedding-rm")
def test_naive_sentence_transformers_cosine(benchmark, batch):
    model = load_embedder(None, "cpu")
    answers, refs = batch

    def naive() -> list[float]:
        a = model.encode(answers, batch_size=BATCH, convert_to_tensor=True, normalize_embeddings=True)
        r = model.encode(refs, batch_size=BATCH, convert_to_tensor=True, normalize_embeddings=True)
        return (a * r).sum(dim=1).clamp(min=0).tolist()

    out = benchmark.pedantic(naive, rounds=5, warmup_rounds=1)
    assert out == pytest.approx(EmbeddingRM(batch_size=BATCH).score(answers, refs), abs=1e-4)
    _record(benchmark, baseline=True)
