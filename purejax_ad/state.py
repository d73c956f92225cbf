"""The vocabulary of the training program: its states, its metrics, and the seam an algorithm plugs into.

One seed's :class:`TrainState` holds an :class:`ActorState` (acting), a :class:`LearnerState` (learning),
the replay buffer and the counters. An algorithm is an :class:`Agent` (chosen once, from the table in
:mod:`purejax_ad.algos`); the shared skeleton in :mod:`purejax_ad.program` runs every agent the same way.
Shapes: ``E`` = ``num_envs``, ``L`` = the agent's learning units (AD layers; 1 for a backprop network).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax

from purejax_ad.hyperparams import Hyperparams
from purejax_ad.replay import Window


class LearnerState(NamedTuple):
    """Learning state of one seed, one entry per learning unit.

    Attributes:
      params: online parameters, a tuple of ``L`` pytrees (AD: one per layer; a backprop agent: ``(params,)``).
      target_params: target parameters, same structure.
      opt_state: optax states (AD: one per layer; actor-critic: ``(critic_state, actor_state)``).
      num_updates: ``[]`` int32 updates done so far.
    """

    params: tuple
    target_params: tuple
    opt_state: tuple
    num_updates: jax.Array


class ActorState(NamedTuple):
    """Acting state of one seed's ``E`` envs.

    Attributes:
      env_state: the envs' states. obs: ``[E, obs_size]`` float32 o_t.
      context: per-layer ``[E, d_l]`` carried contexts c_{t-1} (``()`` for agents without one).
      is_first: ``[E]`` bool, o_t starts an episode (``docs/algorithm.md`` §Quirks, Q1).
      episode_return / episode_length: ``[E]`` running undiscounted return and length.
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
      actor: :class:`ActorState`. learner: :class:`LearnerState`.
      buffer_state: the replay buffer's :class:`purejax_ad.replay.ReplayState`. key: PRNG key.
      hyper: this run's :class:`~purejax_ad.hyperparams.Hyperparams` (swept values differ per run).
      env_steps: ``[]`` int32 env steps taken by this seed (all its envs).
      recent_returns: ``[return_window]`` float32 ring of the last finished episode returns.
      num_episodes: ``[]`` int32 finished episodes.
    """

    actor: ActorState
    learner: LearnerState
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
      td_loss / q_mean: ``[L]`` means over the chunk's updates.
      exploration: ``[]`` the agent's exploration parameter at the chunk's end (epsilon for Q-learning,
        the action-noise std for actor-critic; the ``epsilon`` column of ``metrics.csv``).
      finite: ``[L]`` bool, every loss of the chunk and every parameter of the unit at its end are finite.
      diagnostics: ``[K]`` the agent's :attr:`Agent.diagnostic_names` at the chunk's end (``K = 0``: none).
    """

    env_steps: jax.Array
    episodic_return: jax.Array
    num_episodes: jax.Array
    td_loss: jax.Array
    q_mean: jax.Array
    exploration: jax.Array
    finite: jax.Array
    diagnostics: jax.Array


class Acting(NamedTuple):
    """What an agent's behaviour policy returns for one vectorised env step.

    Attributes:
      action: ``[E]`` int32 or ``[E, m]`` float32, given to the envs.
      stored_action: the action as the replay buffer stores it.
      context: the new ``[E, d_l]`` contexts (``()`` without).
      extras: what the step stores beside the transition (a tuple of ``[E, ...]`` arrays, may be ``()``).
    """

    action: jax.Array
    stored_action: jax.Array
    context: tuple
    extras: tuple


class Network(Protocol):
    """What the program loop and the evaluation need of any agent's network."""

    @property
    def num_layers(self) -> int:
        """``L``: learning units, each with its own loss and ``metrics.csv`` columns."""

    def initial_context(self, batch_shape=()) -> tuple:
        """Contexts at the start of an episode, ``[*batch_shape, d_l]`` each (``()`` without)."""


class Agent(Protocol):
    """The seam: one algorithm, its statics closed over once (``make_agent(config, env, spec)``).

    The skeleton in :mod:`purejax_ad.program` calls these inside the compiled program, one seed at a time.
    """

    network: Network
    sequence_length: int
    """Observations per replayed sample (1: single transitions)."""

    def init_learner(self, key: jax.Array, hyper: Hyperparams) -> LearnerState:
        """Fresh parameters, targets and optimiser states."""

    def stored_example(self) -> tuple[jax.Array, tuple]:
        """``(action, extras)`` of one stored step without the env axis (the replay layout)."""

    def act(self, params: tuple, actor: ActorState, key: jax.Array, env_steps: jax.Array, hyper: Hyperparams,
            warmup: bool) -> Acting:
        """The behaviour policy (``warmup``: the static warm-up phase before the first update)."""

    def exploration(self, env_steps: jax.Array, hyper: Hyperparams) -> jax.Array:
        """``[]`` the exploration parameter reported in the metrics."""

    def update(self, learner: LearnerState, window: Window, hyper: Hyperparams) -> tuple[LearnerState, dict]:
        """One update from a sampled window: ``(learner, {"td_loss": [L], "q_mean": [L]})``."""

    def eval_policy(self, params: tuple, obs: jax.Array, context: tuple, key: jax.Array | None):
        """Evaluation actions for ``obs [P, N, obs_size]`` (``P`` evaluated policies): ``(action, context)``."""

    num_eval_policies: int
    """``P``: policies evaluated side by side (AD: every layer prefix; else 1)."""
    eval_uses_key: bool
    """The evaluation policy is stochastic (epsilon-greedy) and draws a key per step."""
    diagnostic_names: tuple
    """``metrics.csv`` columns of :meth:`diagnostics` (``()``: none)."""

    def diagnostics(self, params: tuple, window: Window, with_returns: tuple) -> jax.Array:
        """``[K]`` values of :attr:`diagnostic_names` for the current parameters on a replayed ``window`` and on
        replayed steps with their Monte-Carlo returns, ``with_returns = (TransitionBatch, returns [n],
        any_complete [])`` (:func:`purejax_ad.diagnostics.sample_with_returns`)."""
