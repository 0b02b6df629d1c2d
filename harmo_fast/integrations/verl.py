"""HARMO inside verl 0.9.1: importing this module registers, through verl's own registries,

- policy loss "harmo" (`actor_rollout_ref.actor.policy_loss.loss_mode=harmo`): verl's clipped
  objective computed by the fused `grpo_loss` (`verl_loss`);
- advantage estimator "harmo" (`algorithm.adv_estimator=harmo`): the group length penalty, then
  HARMO's mean-only group advantage (`verl_advantage`);
- reward-loop manager "harmo" (`reward.reward_manager.name=harmo`): hybrid and format rewards
  through a verifier worker pool with hard timeouts (`verl_reward`), settings in
  `reward.reward_kwargs` (`verl_config`).

verl scores each response alone, so the manager passes each response's correctness to the
estimator inside its reward (`verl_carrier`), and the estimator applies the length penalty per
group. Every verl process that looks these names up must have imported this module: set
`VERL_USE_EXTERNAL_MODULES=harmo_fast.integrations.verl` in the environment that starts verl (verl
imports the listed modules whenever it is imported, in the driver and in its Ray workers).
"""

from __future__ import annotations

from verl.experimental.reward_loop.reward_manager import register
from verl.trainer.ppo.core_algos import register_adv_est, register_policy_loss

from harmo_fast.integrations.verl_advantage import harmo_advantage
from harmo_fast.integrations.verl_loss import harmo_policy_loss
from harmo_fast.integrations.verl_reward import HarmoRewardManager

NAME = "harmo"

register_policy_loss(NAME)(harmo_policy_loss)
register_adv_est(NAME)(harmo_advantage)
register(NAME)(HarmoRewardManager)
