"""The named recipes of `harmo train NAME`: the YAML files in this directory. Each one layers on the
dataclass defaults of harmo_fast/trainer/config.py and lists only the settings it changes; its first
comment line says what it is for."""

from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).parent
SUFFIXES = (".yaml", ".yml")
# `harmo train` without a config runs this recipe.
DEFAULT_RECIPE = "tiny_vlm_synth"


def recipe_names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.iterdir() if p.suffix in SUFFIXES)


def recipe_path(name: str) -> Path:
    """The file of recipe `name`; KeyError when there is none."""
    for suffix in SUFFIXES:
        path = RECIPES_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    raise KeyError(name)


def recipe_summary(name: str) -> str:
    """The recipe's first comment line, without the '#'."""
    for line in recipe_path(name).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""
