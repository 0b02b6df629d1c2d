"""Reward layer of HARMO: verifiers, format and length rewards, model-based RMs, the hybrid router and the async pipeline."""
