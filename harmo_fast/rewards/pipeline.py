"""The asynchronous reward pipeline: `submit(samples)` returns a future at once, so a trainer can
generate the next batch while this one is scored.

Inside one batch, rule verification (in the `VerifierPool` worker processes) and model scoring of
the model-routed samples (batched, in a background thread) run at the same time; the model then
re-scores the non-confident rule verdicts that have a reference, and the composer adds R_len and
R_fmt: `HybridReward.score_staged`, the one scoring path, with the two stages on this pipeline's
rule and model threads. Consecutive batches overlap too: one batch's rules can
run while the previous batch's model scoring finishes.

The pipeline never dies on data: exceptions in a verifier, a worker process, the pool or the model
RM become verdicts with reason "error" (logged once per kind), and the future still resolves to
a full `RewardResult`. Malformed arguments (not RewardSamples, negative lengths) raise in
`submit` itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward, error_verdict, validate_samples
from harmo_fast.rewards.model_rm import ModelRM
from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.types import RewardResult, RewardSample

log = logging.getLogger(__name__)


class RewardPipeline:
    """Asynchronous HARMO rewards (see the module docstring).

    cfg: the reward settings (None = the defaults); the pipeline starts a `VerifierPool(cfg.num_workers, cfg.timeout_s)`
        unless `pool` is given, and builds the model RM from `cfg.model_rm` (on first use, in the
        model thread) unless `model_rm` is given. It closes only what it created.
    max_inflight: batches scored at the same time (their stages share one rule thread and one
        model thread).
    """

    def __init__(
        self,
        cfg: RewardConfig | None = None,
        *,
        pool: Any = None,
        model_rm: ModelRM | None = None,
        max_inflight: int = 2,
    ) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        cfg = cfg or RewardConfig()
        self._own_pool = pool is None
        if pool is None:
            pool = VerifierPool(num_workers=cfg.num_workers, timeout_s=cfg.timeout_s)
        self.cfg = cfg
        self.pool = pool
        self.hybrid = HybridReward(cfg, pool=pool, model_rm=model_rm)
        self._batches = ThreadPoolExecutor(max_inflight, thread_name_prefix="harmo-reward-batch")
        self._rules = ThreadPoolExecutor(1, thread_name_prefix="harmo-reward-rules")
        self._model = ThreadPoolExecutor(1, thread_name_prefix="harmo-reward-model")
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, samples: Sequence[RewardSample]) -> Future[RewardResult]:
        """Start scoring `samples`; the future resolves to their `RewardResult` (input order)."""
        validate_samples(samples)
        samples = list(samples)
        with self._lock:
            if self._closed:
                raise RuntimeError("RewardPipeline is closed")
            return self._batches.submit(self._score_batch, samples)

    def score(self, samples: Sequence[RewardSample]) -> RewardResult:
        """`submit(samples).result()`."""
        return self.submit(samples).result()

    def _score_batch(self, samples: list[RewardSample]) -> RewardResult:
        t0 = time.perf_counter()
        try:
            return self.hybrid.score_staged(samples, self._rules.submit, self._model.submit)
        except Exception as e:
            log.exception("reward batch failed; every sample gets an error verdict")
            n = len(samples)
            verdicts = [error_verdict(f"reward pipeline: {type(e).__name__}: {e}", "none")] * n
            zeros = [0.0] * n
            return RewardResult(
                list(zeros),
                {"hybrid": list(zeros), "length": list(zeros), "format": list(zeros)},
                verdicts,
                {"rules": 0.0, "model": 0.0, "total": time.perf_counter() - t0},
            )

    def close(self) -> None:
        """Finish the submitted batches, then stop the threads and the pool it created
        (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._batches.shutdown(wait=True)
        self._rules.shutdown(wait=True)
        self._model.shutdown(wait=True)
        if self._own_pool:
            self.pool.close()

    def __enter__(self) -> RewardPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
