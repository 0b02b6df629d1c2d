"""Any Hugging Face `AutoModelForSequenceClassification` reward model (one output logit, e.g. a
Skywork-Reward-style model) as a HARMO model RM.

`score(answers, prompts)`: the second argument holds the PROMPTS. Each (prompt, answer) pair is
rendered with the tokenizer's chat template as a user turn and an assistant turn when the
tokenizer has one, else encoded as a text pair; the reward is `sigmoid(logit)` in [0, 1] (reward
models are trained with a Bradley-Terry loss, so the sigmoid of a score is the model's probability
that the answer beats a zero-score answer). An empty answer scores 0.
"""

from __future__ import annotations

import math
import threading
from typing import Any


class HFSequenceRM:
    """Adapter for a sequence-classification reward model given by name/path or as a model object.

    path_or_model: a local path or model id (loaded on first score(), offline if the files are
        local) or an already-built `PreTrainedModel`; tokenizer: required with a model object,
        loaded from the same path otherwise. max_length: inputs are truncated to this many tokens
        (on the tokenizer's truncation side).
    """

    context = "prompt"  # the router passes each sample's prompt as the second argument

    def __init__(
        self,
        path_or_model: Any,
        tokenizer: Any = None,
        device: str = "cpu",
        batch_size: int = 8,
        max_length: int = 2048,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not isinstance(path_or_model, str) and tokenizer is None:
            raise ValueError("tokenizer is required when path_or_model is a model object")
        self.source = path_or_model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._tokenizer = tokenizer
        self._model = None if isinstance(path_or_model, str) else path_or_model
        self._lock = threading.Lock()
        if self._model is not None:
            self._prepare()

    def _prepare(self) -> None:
        num_labels = getattr(self._model.config, "num_labels", None)
        if num_labels != 1:
            raise ValueError(f"a reward model must have exactly one output label (num_labels=1), got {num_labels}")
        if self._tokenizer.pad_token is None:
            # Decoder RMs often ship without a pad token; the EOS token pads, and the model must
            # know its id to find each sequence's last real token.
            self._tokenizer.pad_token = self._tokenizer.eos_token
        if getattr(self._model.config, "pad_token_id", None) is None:
            self._model.config.pad_token_id = self._tokenizer.pad_token_id
        self._model.to(self.device).eval()

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            if self._tokenizer is None:
                self._tokenizer = AutoTokenizer.from_pretrained(self.source)
            self._model = AutoModelForSequenceClassification.from_pretrained(self.source)
            self._prepare()

    def _encode(self, prompts: list[str], answers: list[str]) -> Any:
        tok = self._tokenizer
        common = {"padding": True, "truncation": True, "max_length": self.max_length, "return_tensors": "pt"}
        if getattr(tok, "chat_template", None):
            texts = [
                tok.apply_chat_template(
                    [{"role": "user", "content": p}, {"role": "assistant", "content": a}], tokenize=False
                )
                for p, a in zip(prompts, answers)
            ]
            return tok(texts, **common)
        return tok(prompts, answers, **common)

    def logits(self, answers: list[str], prompts: list[str]) -> list[float]:
        """The model's raw reward logits for each (prompt, answer)."""
        import torch

        if len(answers) != len(prompts):
            raise ValueError(f"answers has {len(answers)} entries, prompts has {len(prompts)}")
        self._load()
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(answers), self.batch_size):
                batch = self._encode(prompts[start : start + self.batch_size], answers[start : start + self.batch_size])
                logits = self._model(**{k: v.to(self.device) for k, v in batch.items()}).logits
                out.extend(logits[:, 0].float().tolist())
        return out

    def score(self, answers: list[str], prompts: list[str]) -> list[float]:
        """sigmoid(logit) per answer, in [0, 1]; an empty answer scores 0."""
        if len(answers) != len(prompts):
            raise ValueError(f"answers has {len(answers)} entries, prompts has {len(prompts)}")
        live = [i for i, a in enumerate(answers) if isinstance(a, str) and a.strip()]
        out = [0.0] * len(answers)
        for i, z in zip(live, self.logits([answers[i] for i in live], [prompts[i] for i in live])):
            out[i] = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        return out
