"""verl reward-loop manager "harmo": HARMO's hybrid and format rewards for verl's reward loop.

Registered by importing `harmo_fast.integrations.verl`; select it with
`reward.reward_manager.name=harmo`. Settings: `reward.reward_kwargs` holds `RewardConfig` fields
(`verl_config`), e.g. `+reward.reward_kwargs.w_format=0.5 +reward.reward_kwargs.timeout_s=10`.

verl calls `run_single` once per response, concurrently. Responses that arrive while a batch is
being scored are scored together as the next batch, so the rule verifiers of one batch run in
parallel in this manager's `VerifierPool` (`num_workers` processes, a hard `timeout_s` per sample).
A response's data: the decoded response (special tokens skipped), `reward_model.ground_truth`,
`data_source`, and from `extra_info` the optional `task_type`, `reference`, `choices` and `prompt`
(else verl's `raw_prompt`); the task type defaults to the one its data source implies
(`samples.DATA_SOURCE_TASK_TYPES`).

Returned per response: `reward_score` = w_hybrid * R_hyb + w_format * R_fmt with the correctness
bit of `verl_carrier` (the "harmo" advantage estimator adds the group length penalty from it), and
`reward_extra_info` = {acc: 1.0 when correct (hybrid >= length.correct_threshold) else 0.0,
hybrid, format (unweighted), length: the response's token count}. A custom reward function
(`reward.custom_reward_function`) is not used by this manager.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable
from typing import Any

from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from harmo_fast.integrations.samples import message_text
from harmo_fast.integrations.verl_carrier import encode
from harmo_fast.integrations.verl_config import trainer_reward_config
from harmo_fast.integrations.verl_score import verl_sample
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.types import RewardResult, RewardSample


class SampleBatcher:
    """Scores single samples in batches: a sample that arrives while a batch is being scored
    joins the next batch. `score_batch` runs in the event loop's default executor."""

    def __init__(self, score_batch: Callable[[list[RewardSample]], RewardResult]) -> None:
        self.score_batch = score_batch
        self._pending: list[tuple[RewardSample, asyncio.Future]] = []
        self._draining = False
        self._task: asyncio.Task | None = None

    async def score(self, sample: RewardSample) -> tuple[float, float]:
        """(hybrid, format) of one sample."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((sample, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())  # held: the loop keeps only a weak reference
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await asyncio.sleep(0)  # samples queued in the same loop turn join this batch
                batch, self._pending = self._pending, []
                try:
                    result = await loop.run_in_executor(None, self.score_batch, [s for s, _ in batch])
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for i, (_, future) in enumerate(batch):
                    if not future.done():
                        future.set_result((result.components["hybrid"][i], result.components["format"][i]))
        finally:
            self._draining = False


def _prompt_text(raw_prompt: Any) -> str:
    if raw_prompt is None:
        return ""
    if isinstance(raw_prompt, (str, dict)):
        return message_text(raw_prompt)
    return message_text(list(raw_prompt))


class HarmoRewardManager(RewardManagerBase):
    """See the module docstring."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any = None,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
        **_: Any,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        self.cfg = trainer_reward_config(config)
        self.pool = VerifierPool(num_workers=self.cfg.num_workers, timeout_s=self.cfg.timeout_s)
        atexit.register(self.pool.close)
        self.hybrid = HybridReward(self.cfg, pool=self.pool)
        self.batcher = SampleBatcher(self.hybrid.score)

    def close(self) -> None:
        """Stop the verifier worker processes."""
        self.pool.close()

    def _sample(self, non_tensor: dict[str, Any], text: str, length: int) -> RewardSample:
        reward_model = non_tensor.get("reward_model")
        if not isinstance(reward_model, dict) or "ground_truth" not in reward_model:
            raise KeyError(
                "harmo reward manager: each sample needs non_tensor_batch['reward_model']['ground_truth'], "
                f"got reward_model={reward_model!r:.120}"
            )
        info = dict(non_tensor.get("extra_info") or {})
        if not info.get("prompt"):
            info["prompt"] = _prompt_text(non_tensor.get("raw_prompt"))
        return verl_sample(non_tensor.get("data_source", ""), text, reward_model["ground_truth"], info, length)

    async def run_single(self, data: Any) -> dict[str, Any]:
        """verl's per-response call: {"reward_score", "reward_extra_info"} of the last response in
        `data` (a DataProto of one response, as verl's reward loop passes it)."""
        item = data[len(data) - 1]  # multi-turn outputs: the last sequence, as verl's managers do
        response_ids = item.batch["responses"]
        length = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(
            None, lambda: self.tokenizer.decode(response_ids[:length], skip_special_tokens=True)
        )
        sample = self._sample(item.non_tensor_batch, text, length)
        hybrid, fmt = await self.batcher.score(sample)
        correct = hybrid >= self.cfg.length.correct_threshold
        score = self.cfg.w_hybrid * hybrid + self.cfg.w_format * fmt
        return {
            "reward_score": encode(score, correct),
            "reward_extra_info": {"acc": float(correct), "hybrid": hybrid, "format": fmt, "length": length},
        }
