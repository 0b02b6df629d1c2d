"""The synthetic task sets by name (`data.synth_kind`, `harmo data synth --kind`): each writer takes
(out_dir, n_train, n_test, seed) and writes train.jsonl and test.jsonl under out_dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harmo_fast.data.synth import write_synth
from harmo_fast.data.synth_text import write_text_synth

SYNTH_KINDS: dict[str, Callable[..., dict[str, Path]]] = {
    "image": write_synth,  # the multimodal set of the embedded default
    "text": write_text_synth,  # arithmetic and word problems for pretrained text models
}


def write_synth_kind(
    kind: str, out_dir: str | Path, n_train: int, n_test: int, seed: int, **kwargs: Any
) -> dict[str, Path]:
    """Write the task set `kind` (a key of SYNTH_KINDS); extra keyword arguments go to its writer."""
    if kind not in SYNTH_KINDS:
        raise ValueError(f"unknown synthetic task set {kind!r}; expected one of {', '.join(SYNTH_KINDS)}")
    return SYNTH_KINDS[kind](out_dir, n_train, n_test, seed, **kwargs)
