"""The training program: pure functions of explicit state, one seed at a time, vmapped over seeds.

``make_train(config, env)`` returns a :class:`Trainer` of pure per-seed functions:

* ``init(key, hyper) -> TrainState`` (``hyper``: this run's traced :class:`~purejax_ad.ad_dqn.Hyperparams`;
  a sweep vmaps over configs x seeds);
* ``warmup(state) -> state``: ``learning_starts`` env steps of acting and storing, no updates;
* ``train_chunk(state) -> (state, ChunkMetrics)``: a ``lax.scan`` of ``updates_per_chunk`` times
  "``train_frequency`` env steps, then one update of every layer" (the replay ratio lives in the
  loop structure, not in a per-seed ``lax.cond``); metrics are aggregated inside the chunk;
* ``evaluate(state, key) -> [L]`` per-layer-prefix evaluation returns;
* ``env_step(state) -> state`` and ``learn(state) -> (state, metrics)``: one vectorised env step and
  one sample + update, the two phases of a chunk (for profiling and FLOP accounting);
* ``train(key, hyper=None) -> (state, ChunkMetrics [num_chunks])``: the whole run in one function.

The host loop in :mod:`purejax_ad.run` jits ``vmap`` of these over seeds with the state donated.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from purejax_ad import ad_dqn
from purejax_ad.ad_dqn import Hyperparams
from purejax_ad.config import AD_ALGOS, CONTINUOUS_ALGOS, QR_ALGOS, Config
from purejax_ad.envs import Environment
from purejax_ad.evaluation import epsilon_greedy, evaluate
from purejax_ad.network import ADNetwork
from purejax_ad.qnetwork import QNetwork
from purejax_ad.replay import StoredStep, action_dtype, make_replay, obs_codec, pack_flags, prepare_sequences


class ActorState(NamedTuple):
    """Acting state of one seed's ``num_envs`` envs (leading axis ``[num_envs]``).

    Attributes:
      env_state: gymnax states. obs: ``[num_envs, obs_size]`` float32 o_t.
      context: per-layer ``[num_envs, d_l]`` carried contexts c_{t-1}.
      is_first: ``[num_envs]`` bool, o_t starts an episode (replay rule Q1).
      episode_return / episode_length: ``[num_envs]`` running undiscounted return and length.
    """

    env_state: Any
    obs: jax.Array
    context: tuple
    is_first: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array


class TrainState(NamedTuple):
    """Everything one seed carries between chunks.

    Attributes:
      actor: :class:`ActorState`. learner: :class:`purejax_ad.ad_dqn.LearnerState`.
      buffer_state: the compact replay buffer's :class:`purejax_ad.replay.ReplayState`. key: PRNG key.
      hyper: this run's :class:`~purejax_ad.ad_dqn.Hyperparams` (scalars; swept values differ per run).
      env_steps: ``[]`` int32 env steps taken by this seed (all its envs).
      recent_returns: ``[return_window]`` float32 ring of the last finished episode returns.
      num_episodes: ``[]`` int32 finished episodes.
    """

    actor: ActorState
    learner: ad_dqn.LearnerState
    buffer_state: Any
    key: jax.Array
    hyper: Hyperparams
    env_steps: jax.Array
    recent_returns: jax.Array
    num_episodes: jax.Array


class ChunkMetrics(NamedTuple):
    """Per-seed summary of one chunk (no per-step arrays).

    Attributes:
      env_steps: ``[]`` env steps at the end of the chunk. episodic_return: ``[]`` mean of the last
      ``return_window`` finished training episodes (NaN before the first). num_episodes: ``[]``.
      td_loss / q_mean: ``[L]`` means over the chunk's updates. epsilon: ``[]`` at the chunk's end.
      finite: ``[L]`` bool, every loss of the chunk and every parameter of the layer at its end are
      finite (the per-chunk numerical-fault check of :mod:`purejax_ad.run`).
    """

    env_steps: jax.Array
    episodic_return: jax.Array
    num_episodes: jax.Array
    td_loss: jax.Array
    q_mean: jax.Array
    epsilon: jax.Array
    finite: jax.Array


class Trainer(NamedTuple):
    """Pure per-seed functions of one config (see the module docstring)."""

    config: Config
    network: ADNetwork | QNetwork
    init: Callable
    warmup: Callable
    train_chunk: Callable
    evaluate: Callable
    train: Callable
    env_step: Callable
    learn: Callable
    replay: Any = None
    """The :class:`purejax_ad.replay.Replay` the program stores into and samples from."""


def make_network(config: Config, env: Environment) -> ADNetwork | QNetwork:
    """The network a config describes for an env: an AD cell stack for the AD algos, a standard
    Q-network for ``dqn`` / ``qrdqn``; quantile outputs for the QR algos."""
    num_quantiles = config.num_quantiles if config.algo in QR_ALGOS else 0
    if config.algo not in AD_ALGOS:
        torso = config.torso if config.torso != "auto" else ("minatar-conv" if env.suite == "minatar" else "mlp")
        return QNetwork(env.obs_size, env.num_actions, tuple(config.net_arch), torso, env.obs_shape, num_quantiles,
                        config.matmul_dtype)
    return ADNetwork(
        obs_size=env.obs_size,
        num_outputs=env.num_actions,
        net_arch=tuple(config.net_arch),
        num_heads=config.num_heads,
        input_skip=config.input_skip_connections,
        recurrent=config.recurrent_connections,
        forward=config.forward_connections,
        recurrent_weight=config.recurrent_weight,
        forward_weight=config.forward_weight,
        context_alpha=config.context_alpha,
        matmul_dtype=config.matmul_dtype,
        cell=config.network_cell,
        num_quantiles=num_quantiles,
        average_predictions=config.average_predictions,
        mlp_normalization=config.mlp_normalization,
        action_encoding=config.action_encoding,
        goodness=config.goodness,
    )


def epsilon_schedule(env_steps: jax.Array, config: Config, hyper: Hyperparams | None = None) -> jax.Array:
    """Linear epsilon (spec §6.2): ``epsilon_start`` until ``learning_starts``, then linear to
    ``epsilon_end`` over ``exploration_fraction * total_timesteps`` env steps, then constant.

    The three epsilon values come from ``hyper`` (traced, may be swept) or, without it, from ``config``.
    """
    h = config if hyper is None else hyper
    duration = h.exploration_fraction * config.total_timesteps
    frac = jnp.clip((env_steps - config.learning_starts) / duration, 0.0, 1.0)
    return h.epsilon_start + frac * (h.epsilon_end - h.epsilon_start)


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
    """``[L]`` bool: every parameter of layer ``l`` is finite (no NaN or Inf)."""
    return jnp.stack([jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p)])) for p in params])


def make_train(config: Config, env: Environment) -> Trainer:
    """Build the pure per-seed training functions of ``config`` on ``env`` (continuous-action algos:
    :func:`purejax_ad.actor_critic.make_actor_critic_train`, same interface)."""
    if config.algo in CONTINUOUS_ALGOS:
        from purejax_ad.actor_critic import make_actor_critic_train

        return make_actor_critic_train(config, env)
    c = config
    network = make_network(c, env)
    default_hyper = Hyperparams.from_values(c)
    tx = ad_dqn.optimizer_for(default_hyper, c.lr_decay_updates)  # update reads each run's values from its state
    local_learning = c.algo != "ad-backprop"
    replay = make_replay(obs_codec(env), c.num_envs, c.effective_buffer_size, c.batch_size, c.sequence_length,
                         env.max_episode_steps)
    E, L = c.num_envs, network.num_layers
    store_action = action_dtype(env.num_actions)

    def stored_context(context):
        """What a step stores of the actor's context: nothing, unless ``context_source='stored'``."""
        if c.context_source != "stored":
            return ()
        return tuple(x.astype(jnp.dtype(c.stored_context_dtype)) for x in context)

    def init(key: jax.Array, hyper: Hyperparams | None = None) -> TrainState:
        hyper = default_hyper if hyper is None else hyper
        k_params, k_env, key = jax.random.split(key, 3)
        tx_run = ad_dqn.optimizer_for(hyper, c.lr_decay_updates)
        learner = ad_dqn.init_learner(network, tx_run, k_params, c.shared_init_key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, E))
        actor = ActorState(env_state, obs, network.initial_context((E,)), jnp.ones((E,), bool),
                           jnp.zeros((E,), jnp.float32), jnp.zeros((E,), jnp.int32))
        example = StoredStep(replay.codec.encode(jnp.zeros((env.obs_size,), jnp.float32)),
                             jnp.zeros((), store_action), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.uint8),
                             stored_context(network.initial_context(())))
        return TrainState(actor, learner, replay.init(example), key, hyper, jnp.zeros((), jnp.int32),
                          jnp.zeros((c.return_window,), jnp.float32), jnp.zeros((), jnp.int32))

    def env_step(state: TrainState, _=None) -> tuple[TrainState, None]:
        """One vectorised step of this seed's envs: act, step, store, track episodes."""
        actor, params = state.actor, state.learner.params
        key, k_act, k_env = jax.random.split(state.key, 3)
        epsilon = epsilon_schedule(state.env_steps, c, state.hyper)
        q, new_context, _ = network.step(params, actor.obs, actor.context)  # [L, E, A]
        action, explored = epsilon_greedy(k_act, network.acting_q_values(q), epsilon)
        if not c.advance_context_on_random_action:  # quirk Q2
            new_context = tuple(jnp.where(explored[:, None], old, new) for old, new in zip(actor.context, new_context))
        out = jax.vmap(env.step)(jax.random.split(k_env, E), actor.env_state, action)
        step = StoredStep(replay.codec.encode(actor.obs), action.astype(store_action), out.reward,
                          pack_flags(out.terminated, out.truncated, actor.is_first), stored_context(actor.context))
        buffer_state = replay.add(state.buffer_state, step, out.final_obs)
        ended = out.terminated | out.truncated
        starts = out.terminated | out.truncated if c.truncation_starts_episode else out.terminated  # Q1
        episode_return = actor.episode_return + out.reward
        recent, count = record_returns(state.recent_returns, state.num_episodes, episode_return, ended)
        actor = ActorState(
            env_state=out.state,
            obs=out.obs,
            context=tuple(jnp.where(ended[:, None], 0.0, ctx) for ctx in new_context),
            is_first=starts,
            episode_return=jnp.where(ended, 0.0, episode_return),
            episode_length=jnp.where(ended, 0, actor.episode_length + 1),
        )
        state = state._replace(actor=actor, buffer_state=buffer_state, key=key,
                               env_steps=state.env_steps + E, recent_returns=recent, num_episodes=count)
        return state, None

    def warmup(state: TrainState) -> TrainState:
        state, _ = jax.lax.scan(env_step, state, length=c.warmup_iters)
        return state

    def learn(state: TrainState) -> tuple[TrainState, dict]:
        """Sample a batch of sequences and update every layer once."""
        key, k_sample = jax.random.split(state.key)
        window = replay.sample(state.buffer_state, k_sample, state.actor.obs)
        batch = prepare_sequences(window, c.replay_padding, c.context_source == "stored")
        learner, metrics = ad_dqn.update(network, tx, state.learner, batch, state.hyper, c.train_frequency,
                                         c.double_q, c.td_loss, local_learning, c.qr_loss)
        return state._replace(learner=learner, key=key), metrics

    train_chunk, train = make_chunk_loop(c, L, init, warmup, env_step, learn,
                                         lambda state: epsilon_schedule(state.env_steps, c, state.hyper))

    def evaluate_state(state: TrainState, key: jax.Array) -> jax.Array:
        return evaluate(network, env, state.learner.params, key, c.num_eval_episodes, c.eval_epsilon,
                        c.eval_max_steps, c.advance_context_on_random_action)

    return Trainer(c, network, init, warmup, train_chunk, evaluate_state, train,
                   lambda state: env_step(state)[0], learn, replay)


def make_chunk_loop(config: Config, num_layers: int, init: Callable, warmup: Callable, env_step: Callable,
                    learn: Callable, exploration: Callable) -> tuple[Callable, Callable]:
    """The loop structure every trainer shares: ``(train_chunk, train)``.

    ``train_chunk`` scans ``updates_per_chunk`` times "``iters_per_update`` vectorised env steps
    (``env_step(state, _) -> (state, None)``), then ``learn(state) -> (state, metrics)``" and returns
    :class:`ChunkMetrics` aggregated over the chunk (``metrics["td_loss"]`` / ``["q_mean"]`` are ``[num_layers]``;
    ``exploration(state)`` fills the ``epsilon`` field). ``train(key, hyper)`` is warm-up then ``num_chunks`` chunks.
    """
    c = config

    def update_step(carry, _):
        state, loss_sum, q_sum = carry
        state, _ = jax.lax.scan(env_step, state, length=c.iters_per_update)
        state, metrics = learn(state)
        return (state, loss_sum + metrics["td_loss"], q_sum + metrics["q_mean"]), None

    def train_chunk(state):
        zeros = jnp.zeros((num_layers,), jnp.float32)
        (state, loss_sum, q_sum), _ = jax.lax.scan(update_step, (state, zeros, zeros), length=c.updates_per_chunk)
        n = c.updates_per_chunk
        metrics = ChunkMetrics(state.env_steps, mean_recent_return(state.recent_returns, state.num_episodes),
                               state.num_episodes, loss_sum / n, q_sum / n, exploration(state),
                               layers_finite(state.learner.params) & jnp.isfinite(loss_sum))
        return state, metrics

    def train(key: jax.Array, hyper: Hyperparams | None = None):
        state = warmup(init(key, hyper))
        return jax.lax.scan(lambda s, _: train_chunk(s), state, length=c.num_chunks)

    return train_chunk, train
