"""Environments: a registry of gymnax tasks behind one small, jittable interface.

gymnax 1.0's six-value ``step`` auto-resets and reports ``terminated`` and ``truncated`` separately
(dependencies.md §5). The trainer bootstraps through truncation and never through termination.
MinAtar details (sticky actions, time limits) follow spec §10.1, §10.4 and quirks Q10, Q11.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
from gymnax.wrappers import StickyActionWrapper
from gymnax.wrappers.purerl import StickyActionState

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
#: The official code's ids (spec §10.1) accepted as aliases.
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
    env_id = ENV_ALIASES.get(env_id, env_id)
    if env_id not in ENV_REGISTRY and env_id not in CONTINUOUS_ENVS:
        valid = ", ".join(list(ENV_REGISTRY) + list(ENV_ALIASES))
        raise UnknownEnvError(f"unknown env id {env_id!r}; valid ids: {valid}")
    return env_id


def action_space_kind(env_id: str) -> str:
    """``"discrete"`` or ``"continuous"`` for a known id (raises :class:`UnknownEnvError` otherwise)."""
    return "continuous" if canonical_env_id(env_id) in CONTINUOUS_ENVS else "discrete"


def env_suite(env_id: str) -> str:
    """``"classic"`` or ``"minatar"`` for a registered id."""
    return ENV_REGISTRY[canonical_env_id(env_id)][1]


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
    obs_storage_dtype: Any
    obs_shape: tuple = ()
    """Unflattened observation shape (e.g. ``(10, 10, C)`` for MinAtar); ``()`` = unknown (probe envs)."""

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """``(obs [obs_size] float32, state)``."""
        obs, state = self.env.reset(key, self.env_params)
        return obs.reshape(-1).astype(jnp.float32), state

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> EnvStep:
        """Step one env with an int action; auto-resets at episode end (gymnax 1.0)."""
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


def make_env(env_id: str, sticky_action_prob: float | None = None, minatar_time_limit: str = "original") -> Environment:
    """Build a registered environment.

    Args:
      env_id: a key of :data:`ENV_REGISTRY` or an alias of :data:`ENV_ALIASES`.
      sticky_action_prob: quirk Q10; ``None`` means the suite default (0.1 for MinAtar, as the
        original MinAtar; 0 otherwise).
      minatar_time_limit: quirk Q11. ``"original"`` (faithful): no time limit, and Freeway's
        2500-step end is a termination, as in original MinAtar. ``"gymnax"``: gymnax's truncation.

    Raises:
      UnknownEnvError: unknown id. ValueError: bad sticky probability or time-limit option.
    """
    env_id = canonical_env_id(env_id)
    if env_id in CONTINUOUS_ENVS:
        raise ValueError(f"{env_id} has continuous actions; no continuous-action algo is implemented yet")
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
        obs_storage_dtype=jnp.uint8 if suite == "minatar" else jnp.float32,
        obs_shape=tuple(int(d) for d in env.observation_space(env_params).shape),
    )
