"""Replay: a flashbax trajectory buffer of per-step transitions, sampled as short sequences.

Spec §4.1 and §4.3. flashbax windows are contiguous per env lane and ignore episode boundaries
(dependencies.md §6), so every step stores ``is_first`` and :func:`prepare_sequences` applies the
configured episode-start rule (quirks Q1 and Q3).
"""

from __future__ import annotations

from typing import NamedTuple

import flashbax as fbx
import jax
import jax.numpy as jnp


class Transition(NamedTuple):
    """One stored env step (leading axes are batch/time when stacked).

    Attributes:
      obs: ``[obs_size]`` o_t in the env's storage dtype (uint8 for MinAtar planes).
      action: ``[]`` int32 a_t.
      reward: ``[]`` float32 r_t.
      terminated: ``[]`` bool; the only done flag used for bootstrapping.
      next_obs: ``[obs_size]`` o_{t+1}, the final observation when the episode ended here.
      is_first: ``[]`` bool; o_t starts an episode under the configured rule (Q1).
      context: per-layer ``[d_l]`` contexts c_{t-1} the actor acted with (``context_source="stored"``
        only; ``None`` otherwise, which stores nothing).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    next_obs: jax.Array
    is_first: jax.Array
    context: tuple | None = None


class Batch(NamedTuple):
    """A training batch of replayed sequences, ready for the loss.

    Attributes:
      obs_seq: ``[batch, seq, obs_size]`` float32, ``obs_seq[:, -1]`` is o_t (padded per Q3).
      reset: ``[batch, seq]`` bool, zero the context before this position ('zero_context' only).
      action: ``[batch]`` int32. reward: ``[batch]`` float32. terminated: ``[batch]`` bool.
      next_obs: ``[batch, obs_size]`` float32.
      context0: per-layer ``[batch, d_l]`` float32 stored context before ``obs_seq[:, 0]``
        (``context_source="stored"``); ``None``: the unroll starts from zeros.
    """

    obs_seq: jax.Array
    reset: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    next_obs: jax.Array
    context0: tuple | None = None


def make_replay_buffer(num_envs: int, capacity: int, batch_size: int, sequence_length: int):
    """A flashbax trajectory buffer (period 1) sampling ``[batch_size, sequence_length]`` windows.

    Args:
      num_envs: env lanes added per step (``add_batch_size``).
      capacity: transitions per seed; each lane holds ``capacity // num_envs`` steps.
      batch_size: sequences per sample.
      sequence_length: ``context_size + 1``.
    """
    return fbx.make_trajectory_buffer(
        add_batch_size=num_envs,
        sample_batch_size=batch_size,
        sample_sequence_length=sequence_length,
        period=1,
        min_length_time_axis=sequence_length,
        max_length_time_axis=capacity // num_envs,
    )


def last_episode_start(is_first: jax.Array) -> jax.Array:
    """Index ``m`` of the last ``is_first`` position of each window (0 when none).

    Args:
      is_first: ``[..., seq]`` bool.

    Returns:
      ``[...]`` int32.
    """
    idx = jnp.arange(is_first.shape[-1], dtype=jnp.int32)
    return jnp.max(jnp.where(is_first, idx, 0), axis=-1)


def prepare_sequences(seq: Transition, replay_padding: str) -> Batch:
    """Turn sampled windows ``[batch, seq, ...]`` into a :class:`Batch`.

    ``repeat_first`` (faithful, spec §4.1): with ``m`` the last episode start in the window, every
    earlier observation is replaced by ``O[m]``, and the unroll starts from zero.
    ``zero_context`` (clean): observations stay; the context is reset to zero at every episode
    start, exactly as the actor does.
    With stored contexts (``seq.context`` present) the burn-in starts from the stored context of the
    window's first step and resets at episode starts like the actor, whatever ``replay_padding`` says.
    """
    obs = seq.obs.astype(jnp.float32)
    if seq.context is not None:
        context0 = tuple(c[:, 0].astype(jnp.float32) for c in seq.context)
        return Batch(obs, seq.is_first, seq.action[:, -1], seq.reward[:, -1], seq.terminated[:, -1],
                     seq.next_obs[:, -1].astype(jnp.float32), context0)
    if replay_padding == "repeat_first":
        m = last_episode_start(seq.is_first)
        positions = jnp.maximum(jnp.arange(obs.shape[1])[None, :], m[:, None])
        obs = jnp.take_along_axis(obs, positions[:, :, None], axis=1)
        reset = jnp.zeros(seq.is_first.shape, bool)
    elif replay_padding == "zero_context":
        reset = seq.is_first
    else:
        raise ValueError(f"unknown replay_padding {replay_padding!r}")
    return Batch(
        obs_seq=obs,
        reset=reset,
        action=seq.action[:, -1],
        reward=seq.reward[:, -1],
        terminated=seq.terminated[:, -1],
        next_obs=seq.next_obs[:, -1].astype(jnp.float32),
    )
