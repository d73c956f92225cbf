"""Small shared helpers for the tests (not a test module)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejax_ad.envs import Environment
from purejax_ad.network import ADNetwork


def random_params(network: ADNetwork, seed: int, noise: float = 0.2):
    """Random per-layer parameters with the network's exact pytree structure.

    Drawn with numpy (no XLA compile of the PRNG init): kernels ~ N(0, 1/fan_in), biases and the
    LayerNorm bias ~ N(0, noise^2), LayerNorm scale ~ 1 + N(0, noise^2). Every layer differs.
    """
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(network.init, jax.random.key(0))

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            value = rng.normal(size=leaf.shape) / np.sqrt(leaf.shape[0])
        elif "scale" in name:
            value = 1.0 + noise * rng.normal(size=leaf.shape)
        else:
            value = noise * rng.normal(size=leaf.shape)
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def random_context(network: ADNetwork, seed: int, batch: int):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.normal(size=(batch, d)), jnp.float32) for d in network.net_arch)


# ------------------------------------------------------------------------------------------------
# Probe environments with known Q-values (gymnax-style).
# ------------------------------------------------------------------------------------------------


@struct.dataclass
class ProbeState(environment.EnvState):
    idx: jax.Array  # 0 or 1: the start observation; 2: the second step (two-step probe)


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 10


class ProbeEnv(environment.Environment):
    """One-step probe (``horizon=1``): obs one_hot(i), i uniform in {0, 1}; reward 1 if action == i else 0;
    then terminate, so Q(s_i, a) = 1[a == i].

    Two-step probe (``horizon=2``): the same first step, then obs one_hot(2) where action 1 pays 1 and
    action 0 pays 0.5, then terminate. So Q(s_2, ·) = [0.5, 1] and Q(s_i, a) = 1[a == i] + gamma.

    ``fixed_start`` (0 or 1) replaces the random start observation by a fixed one.
    """

    def __init__(self, horizon: int, fixed_start: int | None = None):
        super().__init__()
        self.horizon = horizon
        self.fixed_start = fixed_start
        self.obs_size = 2 if horizon == 1 else 3

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    def get_obs(self, state, params=None, key=None):
        return jax.nn.one_hot(state.idx, self.obs_size, dtype=jnp.float32)

    def reset_env(self, key, params):
        if self.fixed_start is None:
            idx = jax.random.randint(key, (), 0, 2)
        else:
            idx = jnp.asarray(self.fixed_start, jnp.int32)
        state = ProbeState(time=0, idx=idx)
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        first = state.idx < 2
        reward = jnp.where(first, (action == state.idx).astype(jnp.float32), jnp.where(action == 1, 1.0, 0.5))
        next_idx = jnp.where(first & (self.horizon == 2), 2, state.idx)
        new_state = ProbeState(time=state.time + 1, idx=next_idx)
        terminated = jnp.logical_or(self.horizon == 1, ~first)
        return self.get_obs(new_state), new_state, reward, terminated, {}

    def is_terminated(self, state, params):
        return jnp.asarray(True)

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.obs_size,), jnp.float32)


def probe_environment(horizon: int, fixed_start: int | None = None) -> Environment:
    """The probe wrapped as a purejax_ad environment (float32 observations, bootstraps through truncation)."""
    env = ProbeEnv(horizon, fixed_start)
    params = env.default_params
    return Environment(env_id=f"probe-{horizon}-{fixed_start}", suite="classic", env=env, env_params=params,
                       obs_size=env.obs_size, num_actions=2, max_episode_steps=params.max_steps_in_episode,
                       truncation_is_termination=False, obs_encoding="float32")
