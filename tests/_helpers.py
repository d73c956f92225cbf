"""Small shared helpers for the tests (not a test module)."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from purejax_ad.config import Config
from purejax_ad.envs import Environment
from purejax_ad.program import make_program
from purejax_ad.replay import SequenceBatch
from purejax_ad.network import ADNetwork

#: CLI flags of a tiny CartPole run (seconds of training): 2 seeds, chunks of 400 env steps after a 400-step
#: warm-up, evaluations at 0, 800 and the end.
TINY = ["--total-timesteps", "1200", "--learning-starts", "400", "--log-interval", "400", "--eval-interval", "800",
        "--num-seeds", "2", "--batch-size", "16", "--net-arch", "8", "8", "--num-heads", "2", "--context-size", "3",
        "--num-eval-episodes", "2", "--eval-max-steps", "50"]


def run_cli(*args, timeout=600) -> subprocess.CompletedProcess:
    """``python -m purejax_ad.train ARGS`` in a subprocess (text output captured; raises on ``timeout`` seconds)."""
    return subprocess.run([sys.executable, "-m", "purejax_ad.train", *args], capture_output=True, text=True,
                          timeout=timeout)


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


# ------------------------------------------------------------------------------------------------
# Training runs on the probes, compiled once per test session.
# ------------------------------------------------------------------------------------------------


def probe_config(net_arch, **overrides) -> Config:
    """A tiny config for the probe envs; every setting that matters is explicit (not a Config default)."""
    base = dict(net_arch=tuple(net_arch), num_heads=2, input_skip_connections=True, recurrent_connections=True,
                forward_connections=True, recurrent_weight=1.0, forward_weight=1.0, context_size=2,
                context_alpha=1.0, num_envs=1, batch_size=64, learning_starts=200, total_timesteps=8000,
                train_frequency=1, log_interval=1000, learning_rate=1e-3, adam_b1=0.9, adam_b2=0.99,
                adam_eps=1e-8, max_grad_norm=1.0, double_q=True, td_loss="mse", buffer_size=8000,
                target_update_interval=50, tau=1.0, epsilon_start=1.0, epsilon_end=0.1, exploration_fraction=0.3,
                gamma=0.9, truncation_starts_episode=True, advance_context_on_random_action=True,
                replay_padding="zero_context", shared_init_key=True, eval_interval=0, num_seeds=1,
                num_eval_episodes=8, eval_epsilon=0.0, eval_max_steps=10, return_window=100)
    base.update(overrides)
    return Config(**base)


_COMPILED: dict = {}
_RUNS: dict = {}


def compiled_train(net_arch, horizon: int, **overrides):
    """(trainer, jitted train) for a probe config, compiled once per module run."""
    key = (tuple(net_arch), horizon, tuple(sorted(overrides.items())))
    if key not in _COMPILED:
        trainer = make_program(probe_config(net_arch, **overrides), probe_environment(horizon))
        _COMPILED[key] = (trainer, jax.jit(trainer.train))
    return _COMPILED[key]


def probe_run(net_arch, horizon: int, seed: int, **overrides):
    """(trainer, final state, metrics) of one training run, cached so tests can share it."""
    key = (tuple(net_arch), horizon, seed, tuple(sorted(overrides.items())))
    if key not in _RUNS:
        trainer, train = compiled_train(net_arch, horizon, **overrides)
        _RUNS[key] = (trainer, *train(jax.random.key(seed)))
    return _RUNS[key]


def q_at(network, params, obs_rows, context=None):
    """Q of every layer at a batch of observations, from the given (default zero) context."""
    obs = jnp.asarray(obs_rows, jnp.float32)
    if context is None:
        context = network.initial_context((obs.shape[0],))
    q, new_context, _ = jax.jit(network.step)(params, obs, context)
    return np.asarray(q), new_context


def sequence_batch(seed: int, batch: int = 5, seq: int = 3) -> SequenceBatch:
    rng = np.random.default_rng(seed)
    reset = np.zeros((batch, seq), bool)
    reset[0, 0] = reset[1, 1] = reset[2, 2] = True  # episode starts at every position, and none for 3, 4
    return SequenceBatch(
        obs_seq=jnp.asarray(rng.normal(size=(batch, seq, 3)), jnp.float32),
        reset=jnp.asarray(reset),
        action=jnp.asarray(rng.integers(0, 2, size=batch), jnp.int32),
        reward=jnp.asarray(rng.normal(size=batch), jnp.float32),
        terminated=jnp.asarray(np.arange(batch) % 2 == 1),
        next_obs=jnp.asarray(rng.normal(size=(batch, 3)), jnp.float32),
    )

