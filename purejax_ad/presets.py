"""Presets: named starting configs (docs/algorithm.md §Hyperparameters, §Quirks; README "Methods").

``paper-minatar`` is the official ``scripts/train.py`` column with every quirk at its faithful setting;
``classic-fast`` is a small CPU config tuned for CartPole-v1; ``arq-minatar`` ARQ's MinAtar column;
``minatar-dqn`` / ``classic-dqn`` the backprop DQN baselines; ``paper-minatar-<ablation>`` the AD paper's
ablations; ``paper-dmc`` / ``arq-dmc`` / ``dmc-fast`` DeepMind Control (bang-bang); ``ddpg-dmc-fast`` the
continuous-action pair; ``ndpg-pendulum`` / ``ndpg-dmc-fast`` the neuron-local learner with curved critics.
Every preset also records its name in ``Config.preset``.
"""

from __future__ import annotations

import dataclasses

from purejax_ad.config import Config

PRESETS: dict[str, dict] = {
    # docs/algorithm.md §Hyperparameters, `scripts/train.py` column, every quirk at its faithful setting (docs/algorithm.md §Quirks).
    "paper-minatar": dict(
        env="Breakout-MinAtar", total_timesteps=5_000_000, num_seeds=10, num_envs=1,
        net_arch=(128, 96, 96), num_heads=8, input_skip_connections=True, recurrent_connections=True,
        forward_connections=True, context_size=10, context_alpha=1.0,
        learning_rate=2.5e-4, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-8, max_grad_norm=1.0, gamma=0.99,
        double_q=True, td_loss="mse", buffer_size=4_000_000, batch_size=512, learning_starts=50_000,
        train_frequency=2, target_update_interval=1_000, tau=1.0, epsilon_start=1.0, epsilon_end=0.01,
        exploration_fraction=0.1, truncation_starts_episode=False, advance_context_on_random_action=False,
        replay_padding="repeat_first", shared_init_key=True, sticky_action_prob=None,
        minatar_time_limit="original", eval_interval=1_000_000, num_eval_episodes=10, eval_epsilon=0.05,
        log_interval=50_000, checkpoint_interval=500_000,
    ),
}
# The small CPU base for classic control and dmc/cartpole-balance (clean quirk settings). Before its tuning
# (docs/results.md "Tuning classic-fast") it was classic-fast itself; the presets built on it (classic-dqn,
# dmc-fast, ddpg-dmc-fast) and their recorded results keep these values.
_CLASSIC_CPU = dict(
    env="CartPole-v1", total_timesteps=150_000, num_seeds=4, num_envs=4, net_arch=(64, 64),
    num_heads=4, context_size=8, learning_rate=1e-3, max_grad_norm=1.0, gamma=0.99, td_loss="mse",
    buffer_size=100_000, batch_size=64, learning_starts=5_000, train_frequency=4,
    target_update_interval=200, epsilon_end=0.05, exploration_fraction=0.2,
    truncation_starts_episode=True, advance_context_on_random_action=True, replay_padding="zero_context",
    eval_interval=20_000, log_interval=5_000, checkpoint_interval=50_000,
)
# Small CPU config for CartPole-v1, the default job (tuned here by in-program sweeps, not a paper setting;
# docs/results.md "Tuning classic-fast"): the base with lr 3e-3 decaying linearly to 0, 400k env steps and
# epsilon -> 0.01.
PRESETS["classic-fast"] = dict(_CLASSIC_CPU, learning_rate=3e-3, lr_schedule="linear", epsilon_end=0.01,
                               total_timesteps=400_000, eval_interval=40_000, checkpoint_interval=100_000)
# ARQ's MinAtar column (docs/algorithm.md §Hyperparameters): wider layers, lr 1e-4, train every 4 steps; everything else as AD.
PRESETS["arq-minatar"] = dict(PRESETS["paper-minatar"], algo="arq", net_arch=(400, 200, 200), learning_rate=1e-4,
                              buffer_size=5_000_000, max_grad_norm=1.0, train_frequency=4, total_timesteps=4_000_000)
# The MinAtar paper's DQN (Young & Tian 2019): conv(16, 3x3) -> 128 -> A, batch 32, 100k replay, target every
# 1000 steps, epsilon 1 -> 0.1 over the first 100k steps, 5k warm-up, one update per step. Deviation: Adam
# (b2 0.999) instead of their RMSProp; clip 10. Shared replay/eval/quirks: the paper-minatar ones.
PRESETS["minatar-dqn"] = dict(
    PRESETS["paper-minatar"], algo="dqn", torso="minatar-conv", context_size=0, learning_rate=2.5e-4,
    adam_b2=0.999, adam_eps=1.5e-4, max_grad_norm=10.0, buffer_size=100_000, batch_size=32, learning_starts=5_000,
    train_frequency=1, target_update_interval=1_000, epsilon_end=0.1, exploration_fraction=0.02,
)
# Standard DQN on CartPole-v1 (CPU; docs/results.md "DQN on CartPole-v1"): CleanRL's / PureJaxRL's DQN settings (MLP 120-84,
# batch 128, lr 2.5e-4, one update per 10 env steps, 10k warm-up, 500k steps, Adam b2 0.999, clip 10) with three
# changes chosen here by in-program sweeps (README): a 100k replay (theirs 10k), a hard target copy every 1000 env
# steps (theirs 500), and epsilon 1 -> 0.01 over 20 % of the run after the warm-up (theirs -> 0.05 over 50 %).
# Double DQN, MSE. 2 env lanes per seed.
PRESETS["classic-dqn"] = dict(
    _CLASSIC_CPU, algo="dqn", net_arch=(120, 84), context_size=0, total_timesteps=500_000, num_envs=2,
    train_frequency=10, buffer_size=100_000, batch_size=128, learning_starts=10_000, learning_rate=2.5e-4,
    adam_b2=0.999, max_grad_norm=10.0, gamma=0.99, td_loss="mse", target_update_interval=1_000, tau=1.0,
    epsilon_end=0.01, exploration_fraction=0.2, eval_interval=100_000, log_interval=10_000,
)
# DeepMind Control, bang-bang discretized (docs/algorithm.md §DeepMind Control). The AD paper's DMC hyperparameters are not known (spec
# §Hyperparameters); ARQ's DMC column (§Hyperparameters) is the best proxy and is used for them: lr 2.5e-4, 4M replay, clip 0.1, epsilon
# 1 -> 0.01 over 25 %, train every 4 steps, 4M steps. The AD cell and wiring are paper-minatar's ([128, 96, 96],
# H = 8, every connection). Quirks faithful: truncation does not start an episode (Q1, matters here: every DMC
# episode ends by truncation), fixed task seed (Q7).
PRESETS["paper-dmc"] = dict(
    PRESETS["paper-minatar"], env="dmc/walker-walk", total_timesteps=4_000_000, learning_rate=2.5e-4,
    buffer_size=4_000_000, max_grad_norm=0.1, exploration_fraction=0.25, train_frequency=4,
    fixed_env_reset_key=True, action_repeat=1, eval_interval=500_000,
)
# ARQ's DMC column (docs/algorithm.md §Hyperparameters): ARQ cell with +-1 action bits, everything else as paper-dmc.
PRESETS["arq-dmc"] = dict(PRESETS["paper-dmc"], algo="arq", action_encoding="binary")
# Small CPU config for dmc/cartpole-balance (tuned here, not a paper setting): the small CPU base (classic-fast
# before its tuning) with 1000-step episodes, clean quirk settings.
PRESETS["dmc-fast"] = dict(
    _CLASSIC_CPU, env="dmc/cartpole-balance", total_timesteps=100_000, eval_interval=50_000,
    num_eval_episodes=4, log_interval=10_000,
)
# Continuous actions on dmc/cartpole-balance (CPU, tried here once, not tuned; not a paper setting): DDPG-style
# soft targets (tau 0.005 after every update), MLPs 256-256, lr 1e-3 for critic and actor, batch 256, 60k steps.
# `--algo ndpg` runs the neuron-local learner with the same values.
PRESETS["ddpg-dmc-fast"] = dict(
    PRESETS["dmc-fast"], algo="ddpg", net_arch=(256, 256), learning_rate=1e-3, actor_learning_rate=1e-3,
    tau=0.005, target_update_interval=4, batch_size=256, total_timesteps=60_000, eval_interval=30_000,
)
# The neuron-local learner that learns (docs/algorithm.md §Curved per-neuron critics; chosen here by sweeps on
# Pendulum-v1, docs/results.md "Neuron-local continuous control"; not a paper setting): ndpg with curved
# per-neuron critics, one shared value critic on 1024 random Fourier features, elementwise Adam, a 64-64 actor,
# critic lr 1e-2, actor lr 3e-3; otherwise ddpg-dmc-fast's values. ndpg-dmc-fast: the same on dmc/cartpole-balance
# with 16-step TD errors (chosen by a sweep on DMC: one-step TD errors do not learn it).
PRESETS["ndpg-pendulum"] = dict(
    PRESETS["ddpg-dmc-fast"], env="Pendulum-v1", algo="ndpg", ndpg_critic="quadratic", ndpg_value_features=1024,
    ndpg_optimizer="adam", net_arch=(64, 64), learning_rate=1e-2, actor_learning_rate=3e-3,
    total_timesteps=200_000, eval_interval=50_000,
)
PRESETS["ndpg-dmc-fast"] = dict(PRESETS["ndpg-pendulum"], env="dmc/cartpole-balance", total_timesteps=300_000,
                                ndpg_n_step=16)
# The AD paper's ablations (Figs. 5-6): paper-minatar with one connection type removed, one layer of width
# 128/256/512, or acting with the last layer only.
for _name, _change in {
    "no-forward": dict(forward_connections=False),
    "no-recurrent": dict(recurrent_connections=False),
    "no-skip": dict(input_skip_connections=False),
    "single-128": dict(net_arch=(128,)),
    "single-256": dict(net_arch=(256,)),
    "single-512": dict(net_arch=(512,)),
    "last-layer": dict(average_predictions=False),
}.items():
    PRESETS[f"paper-minatar-{_name}"] = dict(PRESETS["paper-minatar"], **_change)


def preset_config(name: str, **overrides) -> Config:
    """The :class:`Config` of preset ``name`` with ``overrides`` applied.

    Raises:
      ValueError: unknown preset (the message lists the valid ones).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return dataclasses.replace(Config(), **{**PRESETS[name], "preset": name, **overrides})
