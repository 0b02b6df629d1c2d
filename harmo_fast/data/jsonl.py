"""Loading of a training or evaluation set (docs/SPEC.md §4): JSONL, one sample per line,
`{"id", "prompt", "images": [paths relative to the file], "answer", "task_type", "reference"?,
"choices"?}`, or a Hugging Face dataset with the same columns. Bad samples raise a `DataError`
naming the file and line (or the sample id); with `skip_bad=True` they are counted and skipped."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from harmo_fast.rewards.types import TASK_TYPES


class DataError(ValueError):
    """A sample that cannot be used; the message names where it came from."""


@dataclass(frozen=True)
class Sample:
    """One prompt with its gold answer. `images` holds absolute paths or in-memory PIL images."""

    id: str
    prompt: str
    answer: str | list[str]
    task_type: str
    images: tuple[Any, ...] = ()
    reference: str | None = None
    choices: list[str] | None = None
    rationale: str | None = None  # optional worked reasoning; the supervised warm-up teaches it


@dataclass
class Dataset:
    samples: list[Sample]
    source: str
    skipped: list[str] = field(default_factory=list)  # one message per skipped bad sample

    def __len__(self) -> int:
        return len(self.samples)


def _text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{what} must be a string, got {type(value).__name__}")
    return str(value)


def parse_record(record: Any, where: str, base_dir: Path | None) -> Sample:
    """A validated Sample from one record; `where` ("file:line" or a dataset row) prefixes errors."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: a sample must be a JSON object, got {type(record).__name__}")
    sid = str(record["id"]) if record.get("id") is not None else where
    label = f"{where} (id {sid!r})" if record.get("id") is not None else where
    try:
        for key in ("prompt", "answer", "task_type"):
            if record.get(key) is None:
                raise DataError(f"missing required field {key!r}")
        task_type = record["task_type"]
        if task_type not in TASK_TYPES:
            raise DataError(f"unknown task_type {task_type!r}; expected one of {', '.join(TASK_TYPES)}")
        answer = record["answer"]
        answer = [_text(a, "answer") for a in answer] if isinstance(answer, list) else _text(answer, "answer")
        images = record.get("images") or []
        if not isinstance(images, (list, tuple)):
            images = [images]
        resolved = tuple(_resolve_image(img, base_dir) for img in images)
        choices = record.get("choices")
        if choices is not None:
            if not isinstance(choices, list):
                raise DataError(f"choices must be a list, got {type(choices).__name__}")
            choices = [_text(c, "choices") for c in choices]
        reference = record.get("reference")
        rationale = record.get("rationale")
        return Sample(
            id=sid,
            prompt=_text(record["prompt"], "prompt"),
            answer=answer,
            task_type=task_type,
            images=resolved,
            reference=None if reference is None else _text(reference, "reference"),
            choices=choices,
            rationale=None if rationale is None else _text(rationale, "rationale"),
        )
    except DataError as exc:
        raise DataError(f"{label}: {exc}") from None


def _resolve_image(image: Any, base_dir: Path | None) -> Any:
    if isinstance(image, dict) and ("path" in image or "bytes" in image):  # HF datasets Image, undecoded
        if image.get("bytes"):
            return Image.open(io.BytesIO(image["bytes"]))
        image = image["path"]
    if not isinstance(image, str):
        if hasattr(image, "convert"):  # a PIL image (HF datasets decode Image columns)
            return image
        raise DataError(f"an image must be a path or a PIL image, got {type(image).__name__}")
    path = Path(image)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise DataError(f"image not found: {image!r} (looked at {path})")
    return str(path)


def from_records(records: Iterable[Any], source: str, base_dir: Path | None = None, skip_bad: bool = False) -> Dataset:
    """A Dataset from an iterable of mappings (a HF dataset, a list of dicts)."""
    samples, skipped = [], []
    for i, record in enumerate(records):
        try:
            samples.append(parse_record(record, f"{source}[{i}]", base_dir))
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
    return Dataset(samples, source, skipped)


def load_jsonl(path: str | Path, skip_bad: bool = False) -> Dataset:
    """Read a JSONL set; images resolve relative to the file's directory."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    samples, skipped = [], []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
                samples.append(parse_record(record, where, path.parent))
            except DataError as exc:
                if not skip_bad:
                    raise
                skipped.append(str(exc))
    if not samples:
        raise DataError(f"{path}: no usable samples" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return Dataset(samples, str(path), skipped)


def load_hf(spec: str, skip_bad: bool = False) -> Dataset:
    """`name[:split]` (default split "train") through `datasets.load_dataset`."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"loading {spec!r} needs the Hugging Face `datasets` package (pip install datasets)") from None
    name, _, split = spec.partition(":")
    data = datasets.load_dataset(name, split=split or "train")
    return from_records(data, f"{name}:{split or 'train'}", None, skip_bad)


def load_dataset(spec: str | Path, skip_bad: bool = False) -> Dataset:
    """A JSONL path, or `hf:name[:split]` for a Hugging Face dataset."""
    text = str(spec)
    if text.startswith("hf:"):
        return load_hf(text[3:], skip_bad)
    return load_jsonl(text, skip_bad)
