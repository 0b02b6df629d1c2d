"""HARMO inside other trainers: TRL (`harmo_fast.integrations.trl`) and verl
(`harmo_fast.integrations.verl`). Each submodule imports its trainer package, so import only the one
you use; `samples` turns their inputs (chat messages, ground truths, data-source names) into ours."""
