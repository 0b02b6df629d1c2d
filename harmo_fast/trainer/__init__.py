"""The GRPO trainer, one module per component. Its settings are the dataclasses of
`harmo_fast.trainer.config` (each field's default and help text are the documentation); a run
layers a recipe from `harmo_fast/recipes/` or a YAML file, then dotted overrides, on them."""
