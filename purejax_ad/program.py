"""The training program every algorithm shares: pure functions of explicit state, one seed at a time.

``make_program(config, env)`` picks the agent once (:func:`purejax_ad.algos.make_agent`) and returns a
:class:`Program` of pure per-seed functions (the host loop in :mod:`purejax_ad.run` jits ``vmap`` of them
over seeds, the state donated):

* ``init(key, hyper) -> TrainState``; ``hyper``: this run's traced :class:`~purejax_ad.hyperparams.Hyperparams`;
* ``warmup(state) -> state``: ``learning_starts`` env steps of acting and storing, no updates;
* ``train_chunk(state) -> (state, ChunkMetrics)``: a ``lax.scan`` of ``updates_per_chunk`` times
  "``train_frequency`` env steps, then one update" (the replay ratio lives in the loop structure, not in a
  per-seed ``lax.cond``); metrics are aggregated inside the chunk;
* ``evaluate(state, key) -> [P]`` evaluation returns (:func:`purejax_ad.evaluation.evaluate`);
* ``env_step(state) -> state`` and ``learn(state) -> (state, metrics)``: the two phases of a chunk;
* ``train(key, hyper=None) -> (state, ChunkMetrics [num_chunks])``: the whole run in one function.

:func:`make_train` is the one-call Python API for notebooks: ``make_train(config)`` returns that ``train``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from purejax_ad.algos import make_agent
from purejax_ad.config import Config
from purejax_ad.diagnostics import NUM_RETURN_SAMPLES, sample_with_returns
from purejax_ad.envs import Environment, make_config_env
from purejax_ad.evaluation import evaluate
from purejax_ad.hyperparams import Hyperparams
from purejax_ad.replay import Replay, StoredStep, make_replay, obs_codec, pack_flags
from purejax_ad.state import ActorState, Agent, ChunkMetrics, TrainState


class Program(NamedTuple):
    """Pure per-seed functions of one config (see the module docstring)."""

    config: Config
    agent: Agent
    replay: Replay
    init: Callable
    warmup: Callable
    train_chunk: Callable
    evaluate: Callable
    train: Callable
    env_step: Callable
    learn: Callable

    @property
    def network(self) -> Any:
        """The agent's network (``num_layers``: the per-layer columns of the outputs)."""
        return self.agent.network

    @property
    def update(self) -> Callable:
        """``agent.update(learner, window, hyper) -> (learner, metrics)``, statics closed over once."""
        return self.agent.update


def record_returns(recent: jax.Array, count: jax.Array, returns: jax.Array, ended: jax.Array):
    """Write the returns of ended episodes into the ring ``recent``; returns ``(recent, count)``."""
    window = recent.shape[0]
    slot = count + jnp.cumsum(ended) - 1
    index = jnp.where(ended, slot % window, window)  # out of range -> dropped
    recent = recent.at[index].set(returns, mode="drop")
    return recent, count + jnp.sum(ended, dtype=jnp.int32)


def mean_recent_return(recent: jax.Array, count: jax.Array) -> jax.Array:
    """Mean of the filled ring entries (NaN when no episode has finished)."""
    window = recent.shape[0]
    valid = jnp.arange(window) < jnp.minimum(count, window)
    return jnp.where(count > 0, jnp.sum(jnp.where(valid, recent, 0.0)) / jnp.maximum(jnp.minimum(count, window), 1),
                     jnp.nan)


def layers_finite(params) -> jax.Array:
    """``[L]`` bool: every parameter of unit ``l`` is finite (no NaN or Inf)."""
    return jnp.stack([jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p)])) for p in params])


def make_program(config: Config, env: Environment) -> Program:
    """Build the pure per-seed training functions of ``config`` on ``env`` (agent from the algorithm table)."""
    c = config
    agent = make_agent(c, env)
    default_hyper = Hyperparams.from_values(c)
    replay = make_replay(obs_codec(env), c.num_envs, c.effective_buffer_size, c.batch_size, agent.sequence_length,
                         env.max_episode_steps)
    E, L = c.num_envs, agent.network.num_layers

    def init(key: jax.Array, hyper: Hyperparams | None = None) -> TrainState:
        hyper = default_hyper if hyper is None else hyper
        k_params, k_env, key = jax.random.split(key, 3)
        learner = agent.init_learner(k_params, hyper)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, E))
        actor = ActorState(env_state, obs, agent.network.initial_context((E,)), jnp.ones((E,), bool),
                           jnp.zeros((E,), jnp.float32), jnp.zeros((E,), jnp.int32))
        action, extras = agent.stored_example()
        example = StoredStep(replay.codec.encode(jnp.zeros((env.obs_size,), jnp.float32)), action,
                             jnp.zeros((), jnp.float32), jnp.zeros((), jnp.uint8), extras)
        return TrainState(actor, learner, replay.init(example), key, hyper, jnp.zeros((), jnp.int32),
                          jnp.zeros((c.return_window,), jnp.float32), jnp.zeros((), jnp.int32))

    def step(state: TrainState, warmup: bool) -> TrainState:
        """One vectorised step of this seed's envs: act, step, store, track episodes."""
        actor = state.actor
        key, k_act, k_env = jax.random.split(state.key, 3)
        acting = agent.act(state.learner.params, actor, k_act, state.env_steps, state.hyper, warmup)
        out = jax.vmap(env.step)(jax.random.split(k_env, E), actor.env_state, acting.action)
        stored = StoredStep(replay.codec.encode(actor.obs), acting.stored_action, out.reward,
                            pack_flags(out.terminated, out.truncated, actor.is_first), acting.extras)
        buffer_state = replay.add(state.buffer_state, stored, out.final_obs)
        ended = out.terminated | out.truncated
        starts = ended if c.truncation_starts_episode else out.terminated  # quirk Q1
        episode_return = actor.episode_return + out.reward
        recent, count = record_returns(state.recent_returns, state.num_episodes, episode_return, ended)
        actor = ActorState(
            env_state=out.state,
            obs=out.obs,
            context=tuple(jnp.where(ended[:, None], 0.0, ctx) for ctx in acting.context),
            is_first=starts,
            episode_return=jnp.where(ended, 0.0, episode_return),
            episode_length=jnp.where(ended, 0, actor.episode_length + 1),
        )
        return state._replace(actor=actor, buffer_state=buffer_state, key=key, env_steps=state.env_steps + E,
                              recent_returns=recent, num_episodes=count)

    def warmup(state: TrainState) -> TrainState:
        state, _ = jax.lax.scan(lambda s, _: (step(s, True), None), state, length=c.warmup_iters)
        return state

    def learn(state: TrainState) -> tuple[TrainState, dict]:
        """Sample a batch from the replay buffer and update the agent once."""
        key, k_sample = jax.random.split(state.key)
        window = replay.sample(state.buffer_state, k_sample, state.actor.obs)
        learner, metrics = agent.update(state.learner, window, state.hyper)
        return state._replace(learner=learner, key=key), metrics

    def update_step(carry, _):
        state, loss_sum, q_sum = carry
        state, _ = jax.lax.scan(lambda s, _: (step(s, False), None), state, length=c.iters_per_update)
        state, metrics = learn(state)
        return (state, loss_sum + metrics["td_loss"], q_sum + metrics["q_mean"]), None

    def diagnostics(state: TrainState) -> jax.Array:
        """``[K]`` the agent's diagnostics on one replayed batch and on replayed steps with their Monte-Carlo returns
        (:mod:`purejax_ad.diagnostics`); the samples' keys are folded off the run's key, which is not advanced, so
        the training stream does not depend on them."""
        if not getattr(agent, "diagnostic_names", ()):
            return jnp.zeros((0,), jnp.float32)
        window = replay.sample(state.buffer_state, jax.random.fold_in(state.key, 0x0D1A), state.actor.obs)
        with_returns = sample_with_returns(replay, state.buffer_state, jax.random.fold_in(state.key, 0x0D1B),
                                           NUM_RETURN_SAMPLES, state.hyper.gamma)
        return agent.diagnostics(state.learner.params, window, with_returns)

    def train_chunk(state: TrainState) -> tuple[TrainState, ChunkMetrics]:
        zeros = jnp.zeros((L,), jnp.float32)
        (state, loss_sum, q_sum), _ = jax.lax.scan(update_step, (state, zeros, zeros), length=c.updates_per_chunk)
        n = c.updates_per_chunk
        metrics = ChunkMetrics(state.env_steps, mean_recent_return(state.recent_returns, state.num_episodes),
                               state.num_episodes, loss_sum / n, q_sum / n,
                               agent.exploration(state.env_steps, state.hyper),
                               layers_finite(state.learner.params) & jnp.isfinite(loss_sum), diagnostics(state))
        return state, metrics

    def train(key: jax.Array, hyper: Hyperparams | None = None):
        state = warmup(init(key, hyper))
        return jax.lax.scan(lambda s, _: train_chunk(s), state, length=c.num_chunks)

    def evaluate_state(state: TrainState, key: jax.Array) -> jax.Array:
        return evaluate(agent, env, state.learner.params, key, c.num_eval_episodes, c.eval_max_steps)

    return Program(c, agent, replay, init, warmup, train_chunk, evaluate_state, train,
                   lambda state: step(state, False), learn)


def make_train(config: Config, env: Environment | None = None) -> Callable:
    """``train(key, hyper=None) -> (TrainState, ChunkMetrics)``: one seed's whole run as a pure function.

    The Python API for notebooks and scripts (README "Python API"): ``jax.jit(jax.vmap(make_train(config)))(keys)``
    trains ``len(keys)`` seeds in one program, without the host loop's outputs, checkpoints or evaluation.
    Called with the CLI's keys and hyperparameter arrays, ``(seed_keys(config), run_hyperparams(config,
    num_seeds))`` (:mod:`purejax_ad.seeds`), it computes exactly the runs the CLI computes for ``config``; with
    ``hyper=None`` the same runs up to float32 rounding (XLA compiles unbatched defaults differently), which RL
    amplifies over training.

    Args:
      config: the run's :class:`~purejax_ad.config.Config` (no sweep: ``hyper`` defaults to its values).
      env: the environment; ``None`` builds it from ``config`` (:func:`purejax_ad.envs.make_config_env`).

    Returns:
      ``train``; its ``ChunkMetrics`` fields are ``[num_chunks, ...]`` per seed (``[num_seeds, num_chunks, ...]``
      under ``vmap``), one entry per ``log_interval`` env steps.

    Raises:
      UnknownEnvError, ValueError: as :func:`purejax_ad.envs.make_config_env`.
    """
    return make_program(config, make_config_env(config) if env is None else env).train
