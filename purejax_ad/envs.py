"""Environments: a registry of gymnax tasks behind one small, jittable interface.

gymnax 1.0's six-value ``step`` auto-resets and reports ``terminated`` and ``truncated`` separately
(docs/algorithm.md §Environments). The trainer bootstraps through truncation and never through termination.
MinAtar details (sticky actions, time limits) follow docs/algorithm.md §Environments and quirks Q10, Q11.
DeepMind Control tasks (``dmc/...``, MuJoCo Playground in MJX) come from :mod:`purejax_ad.dmc` with the
same interface: bang-bang discrete actions for the Q-learning algos, continuous actions for ddpg/ndpg.
Continuous actions are always given in ``[-1, 1]^m`` and scaled here to the env's bounds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
from gymnax.wrappers import StickyActionWrapper
from gymnax.wrappers.purerl import StickyActionState

from purejax_ad import dmc
from purejax_ad.config import Config


#: User-facing id -> (gymnax id, suite).
ENV_REGISTRY: dict[str, tuple[str, str]] = {
    "CartPole-v1": ("CartPole-v1", "classic"),
    "Acrobot-v1": ("Acrobot-v1", "classic"),
    "MountainCar-v0": ("MountainCar-v0", "classic"),
    "Breakout-MinAtar": ("Breakout-MinAtar", "minatar"),
    "Asterix-MinAtar": ("Asterix-MinAtar", "minatar"),
    "Freeway-MinAtar": ("Freeway-MinAtar", "minatar"),
    "SpaceInvaders-MinAtar": ("SpaceInvaders-MinAtar", "minatar"),
    "Seaquest-MinAtar": ("Seaquest-MinAtar", "minatar"),
}
#: Registered gymnax ids with continuous actions: known, so that a discrete-action algo gets a clear error.
CONTINUOUS_ENVS: dict[str, str] = {"Pendulum-v1": "classic", "MountainCarContinuous-v0": "classic"}
#: The official code's ids (docs/algorithm.md §Environments) accepted as aliases.
ENV_ALIASES: dict[str, str] = {
    f"MinAtar/{game}-v1": f"{game}-MinAtar"
    for game in ("Breakout", "Asterix", "Freeway", "SpaceInvaders", "Seaquest")
}
#: Time limit used instead of "none" when original MinAtar has no truncation (Q11 "original").
NO_TIME_LIMIT = 2**30


class UnknownEnvError(ValueError):
    """Raised for an env id that is not in :data:`ENV_REGISTRY`."""


def canonical_env_id(env_id: str) -> str:
    """Resolve aliases; raise :class:`UnknownEnvError` listing the valid ids for an unknown one."""
    dmc_id = dmc.resolve_dmc_id(env_id)
    if dmc_id is not None:
        return dmc_id
    env_id = ENV_ALIASES.get(env_id, env_id)
    if env_id not in ENV_REGISTRY and env_id not in CONTINUOUS_ENVS:
        valid = ", ".join(list(ENV_REGISTRY) + list(CONTINUOUS_ENVS) + list(ENV_ALIASES) + list(dmc.DMC_ENVS))
        raise UnknownEnvError(f"unknown env id {env_id!r}; valid ids: {valid}")
    return env_id


def action_space_kind(env_id: str) -> str:
    """``"discrete"``, ``"continuous"`` or ``"both"`` (DMC: continuous, or bang-bang discretized)
    for a known id (raises :class:`UnknownEnvError` otherwise)."""
    env_id = canonical_env_id(env_id)
    if env_id in dmc.DMC_ENVS:
        return "both"
    return "continuous" if env_id in CONTINUOUS_ENVS else "discrete"


def env_suite(env_id: str) -> str:
    """``"classic"``, ``"minatar"`` or ``"dmc"`` for a registered id."""
    env_id = canonical_env_id(env_id)
    if env_id in dmc.DMC_ENVS:
        return "dmc"
    return CONTINUOUS_ENVS[env_id] if env_id in CONTINUOUS_ENVS else ENV_REGISTRY[env_id][1]


class EnvStep(NamedTuple):
    """What one vectorised step returns; leading axes ``[...]`` are the env batch.

    Attributes:
      obs: ``[..., obs_size]`` float32 observation to act on next (after an auto-reset).
      state: env state.
      reward: ``[...]`` float32.
      terminated: ``[...]`` bool, a true terminal state: no bootstrap.
      truncated: ``[...]`` bool, the episode was cut by a time limit: bootstrap.
      final_obs: ``[..., obs_size]`` the observation reached by this step, before any reset
        (what the transition's ``next_obs`` must be).
    """

    obs: jax.Array
    state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array


class Environment(NamedTuple):
    """A gymnax environment with flattened observations and the configured MinAtar rules.

    Build it with :func:`make_env`. ``reset`` and ``step`` act on one environment; vmap them.
    """

    env_id: str
    suite: str
    env: Any
    env_params: Any
    obs_size: int
    num_actions: int
    max_episode_steps: int
    truncation_is_termination: bool
    obs_encoding: str
    """How replay stores observations: ``"bits"`` (binary cells bit-packed, MinAtar) or ``"float32"``."""
    obs_shape: tuple = ()
    """Unflattened observation shape (e.g. ``(10, 10, C)`` for MinAtar); ``()`` = unknown (probe envs)."""
    action_dim: int = 0
    """Continuous action dimension m (actions are float32 ``[m]`` in ``[-1, 1]``); 0 = discrete actions."""
    action_high: float = 1.0
    """Continuous actions are multiplied by this before the env sees them (symmetric bounds)."""

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """``(obs [obs_size] float32, state)``."""
        obs, state = self.env.reset(key, self.env_params)
        return obs.reshape(-1).astype(jnp.float32), state

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> EnvStep:
        """Step one env with an int action (or float32 ``[action_dim]`` in ``[-1, 1]`` for continuous
        actions); auto-resets at episode end (gymnax 1.0)."""
        if self.action_dim:
            action = jnp.clip(action, -1.0, 1.0) * self.action_high
            if self.suite != "dmc" and self.action_dim == 1:
                action = action.reshape(())  # gymnax Pendulum / MountainCarContinuous take a scalar
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, self.env_params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(truncated, bool)
        if self.truncation_is_termination:
            terminated, truncated = terminated | truncated, jnp.zeros_like(truncated)
        else:
            truncated = truncated & ~terminated
        if isinstance(state, StickyActionState):  # original MinAtar forgets the last action at reset
            state = state.replace(last_action=jnp.where(terminated | truncated, 0, state.last_action).astype(
                state.last_action.dtype))
        return EnvStep(
            obs=obs.reshape(-1).astype(jnp.float32),
            state=state,
            reward=jnp.asarray(reward, jnp.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=info["final_observation"].reshape(-1).astype(jnp.float32),
        )


def make_env(env_id: str, sticky_action_prob: float | None = None, minatar_time_limit: str = "original",
             continuous: bool = False, action_repeat: int = 1, fixed_env_reset_key: bool = False,
             max_discrete_actions: int = 256) -> Environment:
    """Build a registered environment.

    Args:
      env_id: a key of :data:`ENV_REGISTRY` or an alias of :data:`ENV_ALIASES`.
      sticky_action_prob: quirk Q10; ``None`` means the suite default (0.1 for MinAtar, as the
        original MinAtar; 0 otherwise).
      minatar_time_limit: quirk Q11. ``"original"`` (faithful): no time limit, and Freeway's
        2500-step end is a termination, as in original MinAtar. ``"gymnax"``: gymnax's truncation.
      continuous: build the continuous-action version (ddpg/ndpg); for DMC ``False`` means bang-bang
        discretized actions (docs/algorithm.md §DeepMind Control).
      action_repeat: DMC only: control steps per env step (1 = the paper).
      fixed_env_reset_key: DMC only, quirk Q7 (see :mod:`purejax_ad.dmc`).
      max_discrete_actions: DMC only: a bang-bang action set larger than this is refused.

    Raises:
      UnknownEnvError: unknown id. ValueError: bad sticky probability or time-limit option, a
      discrete build of a continuous gymnax env (or the reverse), too many bang-bang actions.
    """
    env_id = canonical_env_id(env_id)
    if env_id in dmc.DMC_ENVS:
        return make_dmc_env(env_id, continuous, action_repeat, fixed_env_reset_key, max_discrete_actions)
    if continuous != (env_id in CONTINUOUS_ENVS):
        kind = "continuous" if env_id in CONTINUOUS_ENVS else "discrete"
        raise ValueError(f"{env_id} has {kind} actions; the algo needs {'continuous' if continuous else 'discrete'} ones")
    if env_id in CONTINUOUS_ENVS:
        return make_continuous_gymnax_env(env_id)
    gymnax_id, suite = ENV_REGISTRY[env_id]
    if minatar_time_limit not in ("original", "gymnax"):
        raise ValueError(f"minatar_time_limit must be 'original' or 'gymnax', got {minatar_time_limit!r}")
    env, env_params = gymnax.make(gymnax_id)
    prob = (0.1 if suite == "minatar" else 0.0) if sticky_action_prob is None else float(sticky_action_prob)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"sticky_action_prob must be in [0, 1], got {prob}")
    truncation_is_termination = False
    if suite == "minatar" and minatar_time_limit == "original":
        if env_id == "Freeway-MinAtar":
            truncation_is_termination = True
        else:
            env_params = env_params.replace(max_steps_in_episode=NO_TIME_LIMIT)
    if prob > 0.0:
        env = StickyActionWrapper(env, sticky_action_prob=prob)
    obs_shape = env.observation_space(env_params).shape
    obs_size = 1
    for s in obs_shape:
        obs_size *= int(s)
    return Environment(
        env_id=env_id,
        suite=suite,
        env=env,
        env_params=env_params,
        obs_size=obs_size,
        num_actions=int(env.action_space(env_params).n),
        max_episode_steps=int(env_params.max_steps_in_episode),
        truncation_is_termination=truncation_is_termination,
        obs_encoding="bits" if suite == "minatar" else "float32",
        obs_shape=tuple(int(d) for d in env.observation_space(env_params).shape),
    )



def make_config_env(config: Config) -> Environment:
    """The :class:`Environment` a :class:`purejax_ad.config.Config` trains on (continuous actions for an
    algo whose table row acts continuously, bang-bang discretized DMC for the Q-learning algos).

    Raises:
      UnknownEnvError, ValueError: as :func:`make_env` (``config.env`` unknown, options it does not take).
    """
    c = config
    return make_env(c.env, c.sticky_action_prob, c.minatar_time_limit, continuous=c.continuous_actions,
                    action_repeat=c.action_repeat, fixed_env_reset_key=c.fixed_env_reset_key,
                    max_discrete_actions=c.max_discrete_actions)


def make_continuous_gymnax_env(env_id: str) -> Environment:
    """A continuous-action gymnax env (Pendulum-v1, MountainCarContinuous-v0); actions in ``[-1, 1]``
    are scaled to the env's symmetric bounds."""
    env, env_params = gymnax.make(env_id)
    space = env.action_space(env_params)
    high = float(jnp.max(jnp.abs(jnp.asarray(space.high))))
    obs_shape = tuple(int(d) for d in env.observation_space(env_params).shape)
    return Environment(env_id=env_id, suite=CONTINUOUS_ENVS[env_id], env=env, env_params=env_params,
                       obs_size=int(jnp.prod(jnp.asarray(obs_shape))), num_actions=0,
                       max_episode_steps=int(env_params.max_steps_in_episode), truncation_is_termination=False,
                       obs_encoding="float32", obs_shape=obs_shape,
                       action_dim=max(1, int(jnp.prod(jnp.asarray(space.shape)))), action_high=high)


def make_dmc_env(env_id: str, continuous: bool = False, action_repeat: int = 1, fixed_env_reset_key: bool = False,
                 max_discrete_actions: int = 256) -> Environment:
    """A DeepMind Control task in MJX (:class:`purejax_ad.dmc.PlaygroundEnv`), bang-bang discretized
    unless ``continuous``.

    Raises:
      ValueError: ``2^m`` bang-bang actions exceed ``max_discrete_actions`` (e.g. quadruped's 4096),
        or ``action_repeat < 1``.
    """
    name = dmc.DMC_ENVS[env_id]
    m = dmc.DMC_ACTION_DIMS[name]
    check_dmc_options(env_id, continuous, action_repeat, max_discrete_actions)
    env = dmc.PlaygroundEnv(env_id, discrete=not continuous, action_repeat=action_repeat,
                            fixed_reset_key=fixed_env_reset_key)
    return Environment(env_id=env_id, suite="dmc", env=env, env_params=None, obs_size=env.obs_size,
                       num_actions=0 if continuous else dmc.num_bang_bang_actions(m),
                       max_episode_steps=dmc.EPISODE_LENGTH, truncation_is_termination=False,
                       obs_encoding="float32", obs_shape=(env.obs_size,),
                       action_dim=m if continuous else 0, action_high=1.0)


def check_dmc_options(env_id: str, continuous: bool, action_repeat: int, max_discrete_actions: int) -> list[str]:
    """Problems with a DMC build, found without loading anything (used by config validation too).

    Raises:
      ValueError: listing the problems, if any.
    """
    problems = []
    m = dmc.DMC_ACTION_DIMS[dmc.DMC_ENVS[canonical_env_id(env_id)]]
    if not continuous and dmc.num_bang_bang_actions(m) > max_discrete_actions:
        problems.append(f"{env_id} has a {m}-dimensional action: bang-bang discretization gives 2^{m} = "
                        f"{dmc.num_bang_bang_actions(m)} actions, above max_discrete_actions={max_discrete_actions} "
                        "(raise it, or use a continuous-action algo: ddpg, ndpg)")
    if action_repeat < 1:
        problems.append(f"action_repeat must be >= 1, got {action_repeat}")
    if problems:
        raise ValueError("; ".join(problems))
    return problems
