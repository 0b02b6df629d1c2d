"""Datasets: the JSONL/HF loaders of docs/SPEC.md §4 and the synthetic multimodal task set."""
