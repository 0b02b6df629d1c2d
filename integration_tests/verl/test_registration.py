"""How verl finds the "harmo" names: the README's VERL_USE_EXTERNAL_MODULES registers them in any
process that imports verl, and the README's command line composes into a valid verl config."""

import os
import subprocess
import sys

from conftest import compose_trainer_config, readme_command, readme_overrides
from verl.trainer.ppo.reward import resolve_reward_manager_cls
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config

from harmo_fast.integrations.verl_config import trainer_reward_config
from harmo_fast.integrations.verl_reward import HarmoRewardManager

CHECK = """
import verl
from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
names = get_policy_loss_fn("harmo"), get_adv_estimator_fn("harmo"), get_reward_manager_cls("harmo")
print(*(n.__name__ for n in names))
"""


def test_the_environment_variable_registers_everything_on_import_verl():
    assert "VERL_USE_EXTERNAL_MODULES=harmo_fast.integrations.verl python -m verl.trainer.main_ppo" in readme_command()
    env = dict(os.environ, VERL_USE_EXTERNAL_MODULES="harmo_fast.integrations.verl")
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["harmo_policy_loss", "harmo_advantage", "HarmoRewardManager"]


def test_the_readme_command_is_a_valid_verl_config():
    config = compose_trainer_config(readme_overrides())
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    assert config.algorithm.adv_estimator == "harmo"
    assert resolve_reward_manager_cls(config) is HarmoRewardManager
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    assert actor.policy_loss.loss_mode == "harmo" and actor.loss_agg_mode == "token-mean"
    assert actor.clip_ratio_c >= 1 + actor.clip_ratio_high  # what the harmo loss requires
    assert not config.algorithm.use_kl_in_reward  # what the harmo estimator requires
    # the reward settings reach both the manager (whole config) and the estimator (algorithm section)
    cfg = trainer_reward_config(config)
    assert cfg.num_workers == 4 and cfg.length.p_max == 0.5
    assert trainer_reward_config(config.algorithm, relative=True) == cfg
