"""A learned reward head on frozen sentence embeddings, trained on preference pairs with the
Bradley-Terry loss (beyond the paper; docs/SPEC.md §1, "Model-based reward").

Features of a (prompt, response) pair are `[e_p, e_r, e_p * e_r]` with e the unit-norm embeddings
of the frozen embedder (all-MiniLM-L6-v2 by default); the product term lets a small MLP score how
well the response fits the prompt, not only the response alone. Training minimises
`-log sigmoid(s(prompt, chosen) - s(prompt, rejected))`.

The reward is `sigmoid(s - offset)`, where `offset` is the mean head output over the training
responses: Bradley-Terry fixes scores only up to a constant, so 0.5 means "as good as the average
training response". `PreferenceHeadRM.score(answers, prompts)`: the second argument holds the
PROMPTS (questions), not reference answers.

On disk (`harmo rm train --out DIR`): `DIR/head.safetensors` (the MLP weights) and
`DIR/config.json` (format tag, embedder, sizes, offset, training summary).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from harmo_fast.rewards.embedding_rm import embed

FORMAT = "harmo-preference-head"
VERSION = 1
WEIGHTS = "head.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Preference pairs from JSONL: one `{"prompt": str, "chosen": str, "rejected": str}` object per
    line (blank lines skipped, extra keys ignored). Errors name the file and line."""
    path = Path(path)
    pairs = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(
                    f"{where}: expected a JSON object with prompt/chosen/rejected, got {type(obj).__name__}"
                )
            for key in ("prompt", "chosen", "rejected"):
                if key not in obj:
                    raise ValueError(f"{where}: missing key {key!r}")
                if not isinstance(obj[key], str):
                    raise ValueError(f"{where}: {key!r} must be a string, got {type(obj[key]).__name__}")
            if not obj["chosen"].strip() or not obj["rejected"].strip():
                raise ValueError(f"{where}: 'chosen' and 'rejected' must be non-empty")
            pairs.append(PreferencePair(obj["prompt"], obj["chosen"], obj["rejected"]))
    if not pairs:
        raise ValueError(f"{path}: no preference pairs found")
    return pairs


class PreferenceHead(torch.nn.Module):
    """MLP from pair features (3 * dim) to one unnormalised reward."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3 * dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))

    def forward(self, prompt_emb: torch.Tensor, response_emb: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([prompt_emb, response_emb, prompt_emb * response_emb], dim=-1)).squeeze(-1)


def _embed_pairs(
    prompts: list[str], responses: list[str], embedder: str | None, device: str, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    unique = list(dict.fromkeys(prompts + responses))
    row = {t: k for k, t in enumerate(unique)}
    emb = embed(unique, embedder, device, batch_size)
    return emb[[row[p] for p in prompts]], emb[[row[r] for r in responses]]


class PreferenceHeadRM:
    """A trained preference head as a model RM: `score(answers, prompts)` in [0, 1]."""

    context = "prompt"  # the router passes each sample's prompt as the second argument

    def __init__(self, head: PreferenceHead, config: dict[str, Any], batch_size: int = 64, device: str = "cpu") -> None:
        self.head = head.to(device).eval()
        self.config = config
        self.batch_size = batch_size
        self.device = device

    @torch.no_grad()
    def logits(self, answers: list[str], prompts: list[str]) -> list[float]:
        """The head's raw Bradley-Terry scores s(prompt, answer)."""
        if len(answers) != len(prompts):
            raise ValueError(f"answers has {len(answers)} entries, prompts has {len(prompts)}")
        if not answers:
            return []
        p, r = _embed_pairs(list(prompts), list(answers), self.config["embedder"], self.device, self.batch_size)
        return self.head(p.to(self.device), r.to(self.device)).float().tolist()

    def score(self, answers: list[str], prompts: list[str]) -> list[float]:
        """sigmoid(s - offset) per answer; an empty answer scores 0."""
        live = [i for i, a in enumerate(answers) if isinstance(a, str) and a.strip()]
        if len(answers) != len(prompts):
            raise ValueError(f"answers has {len(answers)} entries, prompts has {len(prompts)}")
        out = [0.0] * len(answers)
        offset = self.config["offset"]
        for i, s in zip(live, self.logits([answers[i] for i in live], [prompts[i] for i in live])):
            out[i] = 1.0 / (1.0 + math.exp(-(s - offset)))
        return out

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(out / WEIGHTS))
        (out / CONFIG).write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 64, device: str = "cpu") -> PreferenceHeadRM:
        path = Path(path)
        for name in (CONFIG, WEIGHTS):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} not found: is {path} a directory written by `harmo rm train`?")
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        if config.get("format") != FORMAT or config.get("version") != VERSION:
            raise ValueError(
                f"{path / CONFIG}: not a {FORMAT} v{VERSION} config "
                f"(format={config.get('format')!r}, version={config.get('version')!r})"
            )
        head = PreferenceHead(config["embedding_dim"], config["hidden"])
        head.load_state_dict(load_file(str(path / WEIGHTS)))
        return cls(head, config, batch_size=batch_size, device=device)


def train_preference_head(
    pairs: list[PreferencePair],
    *,
    embedder: str | None = None,
    epochs: int = 100,
    lr: float = 1e-3,
    hidden: int = 256,
    batch_size: int = 64,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
) -> PreferenceHeadRM:
    """Train a head on `pairs` with the Bradley-Terry loss (Adam, minibatches of `batch_size`
    pairs, `epochs` passes). The embedder stays frozen and embeds every distinct text once."""
    if not pairs:
        raise ValueError("pairs must not be empty")
    for name, value in (("epochs", epochs), ("hidden", hidden), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    prompts = [p.prompt for p in pairs]
    p_emb, c_emb = _embed_pairs(prompts, [p.chosen for p in pairs], embedder, device, batch_size)
    _, r_emb = _embed_pairs(prompts, [p.rejected for p in pairs], embedder, device, batch_size)
    p_emb, c_emb, r_emb = (t.to(device) for t in (p_emb, c_emb, r_emb))

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = PreferenceHead(p_emb.shape[1], hidden).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(pairs)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            idx = idx.to(device)
            margin = head(p_emb[idx], c_emb[idx]) - head(p_emb[idx], r_emb[idx])
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    head.eval()
    with torch.no_grad():
        s_c, s_r = head(p_emb, c_emb), head(p_emb, r_emb)
        final_loss = float(-torch.nn.functional.logsigmoid(s_c - s_r).mean())
        accuracy = float((s_c > s_r).float().mean())
        offset = float(torch.cat([s_c, s_r]).mean())
    config = {
        "format": FORMAT,
        "version": VERSION,
        "embedder": embedder,
        "embedding_dim": int(p_emb.shape[1]),
        "hidden": hidden,
        "features": "concat(prompt, response, prompt*response)",
        "offset": offset,
        "train": {"pairs": n, "epochs": epochs, "lr": lr, "seed": seed, "final_loss": final_loss, "accuracy": accuracy},
    }
    return PreferenceHeadRM(head, config, batch_size=batch_size, device=device)
