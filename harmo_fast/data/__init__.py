"""Datasets: the JSONL/HF loaders of SPEC.md section 4 and the synthetic multimodal task set."""
