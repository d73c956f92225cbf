"""Replay: a compact, lossless flashbax trajectory buffer of env steps, sampled as short windows.

Layout (docs/results.md "Memory: compact replay, the pre-flight plan, seed waves"). Every env lane is a flashbax
trajectory-buffer row; a slot holds one :class:`StoredStep`: the observation o_t **once** (MinAtar's binary planes bit-packed, 8 cells a byte;
other suites float32), the action in the smallest integer dtype that holds ``num_actions``, the reward as
float32 (exact), one ``uint8`` of flags (terminated, truncated, episode start), and per-algorithm extras
(stored contexts, ndpg's node noise). The next observation o_{t+1} is *not* stored with the step:

* it is the observation of the next slot of the same lane (what the actor saw next), or, for the newest
  slot, the actor's current observation, which the sampler is given;
* where the episode ended by **truncation** the next slot holds the reset observation, but the target
  bootstraps from the true final observation, so those (and only those) are kept in a small side table
  ``final_obs [num_envs, K]``. A lane truncates at most once every ``max_episode_steps`` env steps (the
  time limit), so slot ``(t // max_episode_steps) % K`` of the side table, with
  ``K = steps_per_lane // max_episode_steps + 2``, is never overwritten while step ``t`` is in the buffer;
* where it ended by **termination** the target is ``r`` alone and o_{t+1} is never read: the sampled
  ``next_obs`` is zero there.

Sampling draws exactly the windows flashbax's ``trajectory_buffer.sample`` draws for the same key
(:func:`sample_indices`; ``tests/test_replay.py`` checks it against flashbax itself), so a run's random
stream does not depend on the layout. Windows are contiguous per lane and ignore episode boundaries:
:func:`prepare_sequences` applies the configured episode-start rule (docs/algorithm.md §Quirks:
Q1, Q3).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flashbax as fbx
import jax
import jax.numpy as jnp

#: Bits of :attr:`StoredStep.flags`.
TERMINATED, TRUNCATED, IS_FIRST = 1, 2, 4


class ObsCodec(NamedTuple):
    """How observations are stored: ``"bits"`` (binary cells, ``jnp.packbits``; lossless only for
    observations in {0, 1}, MinAtar) or ``"float32"`` (as they are).

    Attributes:
      obs_size: flattened observation size.
      encoding: ``"bits"`` or ``"float32"``.
    """

    obs_size: int
    encoding: str

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """Shape of one stored observation (``[ceil(obs_size / 8)]`` bytes for bits)."""
        return ((self.obs_size + 7) // 8,) if self.encoding == "bits" else (self.obs_size,)

    @property
    def stored_dtype(self):
        """dtype of one stored observation."""
        return jnp.uint8 if self.encoding == "bits" else jnp.float32

    def encode(self, obs: jax.Array) -> jax.Array:
        """``[..., obs_size]`` float32 -> ``[..., *stored_shape]``."""
        if self.encoding == "bits":
            return jnp.packbits(obs != 0, axis=-1)
        return obs.astype(jnp.float32)

    def decode(self, stored: jax.Array) -> jax.Array:
        """``[..., *stored_shape]`` -> ``[..., obs_size]`` float32."""
        if self.encoding == "bits":
            return jnp.unpackbits(stored, axis=-1, count=self.obs_size).astype(jnp.float32)
        return stored.astype(jnp.float32)


def action_dtype(num_actions: int):
    """Smallest unsigned integer dtype holding action indices ``0 .. num_actions - 1``."""
    if num_actions <= 2**8:
        return jnp.uint8
    return jnp.uint16 if num_actions <= 2**16 else jnp.int32


class StoredStep(NamedTuple):
    """What one buffer slot holds for env step t of one lane (leading axes: lane / time when stacked).

    Attributes:
      obs: o_t encoded by the buffer's :class:`ObsCodec`.
      action: ``[]`` :func:`action_dtype` index, or ``[m]`` float32 continuous action.
      reward: ``[]`` float32 r_t.
      flags: ``[]`` uint8, bits :data:`TERMINATED`, :data:`TRUNCATED`, :data:`IS_FIRST` (o_t starts an
        episode under the configured rule, quirk Q1).
      extras: tuple of per-algorithm arrays stored as they are (``context_source="stored"``: the contexts
        c_{t-1} the actor acted with; ndpg: the hidden node noise); ``()`` stores nothing.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    flags: jax.Array
    extras: tuple = ()


def pack_flags(terminated: jax.Array, truncated: jax.Array, is_first: jax.Array) -> jax.Array:
    """Bool arrays -> ``uint8`` flags (same shape)."""
    return (terminated.astype(jnp.uint8) * TERMINATED | truncated.astype(jnp.uint8) * TRUNCATED
            | is_first.astype(jnp.uint8) * IS_FIRST)


class Window(NamedTuple):
    """Sampled windows, decoded: ``[batch, seq, ...]`` (seq = sequence length), plus o_{t+1} of each
    window's last step.

    Attributes:
      obs: ``[batch, seq, obs_size]`` float32. action: ``[batch, seq]`` int32 (or ``[batch, seq, m]`` float32).
      reward: ``[batch, seq]`` float32. terminated / truncated / is_first: ``[batch, seq]`` bool.
      next_obs: ``[batch, obs_size]`` float32, the observation after the last step (its true final
        observation after a truncation; zeros after a termination, where it is never read).
      extras: the stored extras, ``[batch, seq, ...]`` each.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    is_first: jax.Array
    next_obs: jax.Array
    extras: tuple = ()


class ReplayState(NamedTuple):
    """State of one seed's buffer.

    Attributes:
      steps: flashbax trajectory-buffer state of :class:`StoredStep` s, ``[num_envs, steps_per_lane]``.
      final_obs: ``[num_envs, K, *stored_shape]`` encoded final observations of truncated steps.
      final_block: ``[num_envs, K]`` int32, the block ``t // max_episode_steps`` each side slot was
        written for (-1: never); a sampled truncation whose block does not match reads NaN (a loud
        failure instead of a wrong bootstrap, should an env truncate more often than its time limit).
      num_added: ``[]`` int32 steps added per lane so far.
    """

    steps: Any
    final_obs: jax.Array
    final_block: jax.Array
    num_added: jax.Array


def sample_indices(steps_state, key: jax.Array, batch_size: int, sequence_length: int):
    """The windows flashbax 0.1's ``trajectory_buffer.sample`` (period 1) draws for ``key``.

    Returns:
      ``(lane [batch], time [batch, seq], logical_last [batch], max_time [])``: physical lane and time
      indices of each window, the logical position (0 = oldest valid step) of its last step, and the
      number of valid steps per lane.
    """
    num_lanes, steps_per_lane = jax.tree.leaves(steps_state.experience)[0].shape[:2]
    max_time = jnp.where(steps_state.is_full, steps_per_lane, steps_state.current_index)
    head = jnp.where(steps_state.is_full, steps_state.current_index, 0)
    max_start = max_time - sequence_length
    num_valid = jnp.where(max_start >= 0, max_start + 1, 0)
    key, k_items = jax.random.split(key)
    key, k_lanes = jax.random.split(key)
    start = jax.random.randint(k_items, (batch_size,), 0, num_valid)
    lane = jax.random.randint(k_lanes, (batch_size,), 0, num_lanes)
    time = (head + start[:, None] + jnp.arange(sequence_length)) % steps_per_lane
    return lane, time, start + sequence_length - 1, max_time


class Replay(NamedTuple):
    """A compact replay buffer of one seed (static description; the data lives in :class:`ReplayState`).

    Build it with :func:`make_replay`. ``add`` / ``sample`` are pure and jittable.
    """

    buffer: Any
    codec: ObsCodec
    num_envs: int
    steps_per_lane: int
    batch_size: int
    sequence_length: int
    max_episode_steps: int

    @property
    def num_final_slots(self) -> int:
        """``K``: side-table slots per lane for final observations of truncated steps."""
        return self.steps_per_lane // self.max_episode_steps + 2

    def init(self, example: StoredStep) -> ReplayState:
        """Empty buffer for steps shaped like ``example`` (one unbatched step)."""
        k = self.num_final_slots
        return ReplayState(
            steps=self.buffer.init(example),
            final_obs=jnp.zeros((self.num_envs, k, *self.codec.stored_shape), self.codec.stored_dtype),
            final_block=jnp.full((self.num_envs, k), -1, jnp.int32),
            num_added=jnp.zeros((), jnp.int32),
        )

    def add(self, state: ReplayState, step: StoredStep, final_obs: jax.Array) -> ReplayState:
        """Append one step of every lane.

        Args:
          step: ``[num_envs]``-batched :class:`StoredStep`.
          final_obs: ``[num_envs, obs_size]`` float32 observation the step reached (before any reset);
            kept only where the step was truncated.
        """
        truncated = (step.flags & TRUNCATED) > 0
        block = state.num_added // self.max_episode_steps
        slot = block % self.num_final_slots
        lanes = jnp.arange(self.num_envs)
        old = state.final_obs[lanes, slot]
        new = jnp.where(truncated.reshape(-1, *([1] * (old.ndim - 1))), self.codec.encode(final_obs), old)
        return ReplayState(
            steps=self.buffer.add(state.steps, jax.tree.map(lambda x: x[:, None], step)),
            final_obs=state.final_obs.at[lanes, slot].set(new),
            final_block=state.final_block.at[lanes, slot].set(jnp.where(truncated, block,
                                                                        state.final_block[lanes, slot])),
            num_added=state.num_added + 1,
        )

    def sample(self, state: ReplayState, key: jax.Array, current_obs: jax.Array) -> Window:
        """``batch_size`` windows of ``sequence_length`` steps, decoded, with each last step's o_{t+1}.

        Args:
          key: the key flashbax's ``sample`` would be given (the same windows are drawn).
          current_obs: ``[num_envs, obs_size]`` float32 the actor's current observations (o_{t+1} of
            the newest step of each lane).
        """
        lane, time, last, max_time = sample_indices(state.steps, key, self.batch_size, self.sequence_length)
        exp = state.steps.experience
        seq = jax.tree.map(lambda x: x[lane[:, None], time], exp)
        flags = seq.flags
        last_flags = flags[:, -1]
        terminated, truncated = (last_flags & TERMINATED) > 0, (last_flags & TRUNCATED) > 0
        # o_{t+1}: the next slot of the lane, the actor's observation for the newest step, or the side table.
        following = self.codec.decode(exp.obs[lane, (time[:, -1] + 1) % self.steps_per_lane])
        next_obs = jnp.where((last == max_time - 1)[:, None], current_obs[lane], following)
        abs_time = state.num_added - max_time + last
        block = abs_time // self.max_episode_steps
        slot = block % self.num_final_slots
        final = self.codec.decode(state.final_obs[lane, slot])
        final = jnp.where((state.final_block[lane, slot] == block)[:, None], final, jnp.nan)
        next_obs = jnp.where(truncated[:, None], final, next_obs)
        next_obs = jnp.where(terminated[:, None], 0.0, next_obs)
        action = seq.action.astype(jnp.int32) if jnp.issubdtype(seq.action.dtype, jnp.integer) else seq.action
        return Window(
            obs=self.codec.decode(seq.obs),
            action=action,
            reward=seq.reward,
            terminated=(flags & TERMINATED) > 0,
            truncated=(flags & TRUNCATED) > 0,
            is_first=(flags & IS_FIRST) > 0,
            next_obs=next_obs,
            extras=seq.extras,
        )


def make_replay(codec: ObsCodec, num_envs: int, capacity: int, batch_size: int, sequence_length: int,
                max_episode_steps: int) -> Replay:
    """A compact buffer of ``capacity`` transitions per seed sampling ``[batch_size, sequence_length]`` windows.

    Args:
      codec: how observations are stored (:func:`obs_codec`).
      num_envs: env lanes added per step (flashbax's ``add_batch_size``).
      capacity: transitions per seed; each lane holds ``capacity // num_envs`` steps.
      batch_size: windows per sample.
      sequence_length: steps per window (``context_size + 1``; 1 for the actor-critic algos).
      max_episode_steps: the env's time limit in env steps (the minimum spacing of two truncations of a lane).

    Raises:
      ValueError: a lane shorter than a window, or a time limit below 1.
    """
    steps_per_lane = capacity // num_envs
    if steps_per_lane < sequence_length:
        raise ValueError(f"a lane holds {steps_per_lane} steps, fewer than a window ({sequence_length})")
    if max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    buffer = fbx.make_trajectory_buffer(
        add_batch_size=num_envs,
        sample_batch_size=batch_size,
        sample_sequence_length=sequence_length,
        period=1,
        min_length_time_axis=sequence_length,
        max_length_time_axis=steps_per_lane,
    )
    return Replay(buffer, codec, num_envs, steps_per_lane, batch_size, sequence_length, int(max_episode_steps))


def obs_codec(env) -> ObsCodec:
    """The codec of an :class:`purejax_ad.envs.Environment`: bits for binary observations (MinAtar)."""
    return ObsCodec(env.obs_size, env.obs_encoding)


class SequenceBatch(NamedTuple):
    """A Q-learning batch of replayed sequences, ready for the loss.

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


def last_episode_start(is_first: jax.Array) -> jax.Array:
    """Index ``m`` of the last ``is_first`` position of each window (0 when none).

    Args:
      is_first: ``[..., seq]`` bool.

    Returns:
      ``[...]`` int32.
    """
    idx = jnp.arange(is_first.shape[-1], dtype=jnp.int32)
    return jnp.max(jnp.where(is_first, idx, 0), axis=-1)


def prepare_sequences(window: Window, replay_padding: str, stored_context: bool = False) -> SequenceBatch:
    """Turn sampled windows into a :class:`SequenceBatch`.

    ``repeat_first`` (faithful, ``docs/algorithm.md`` §Quirks, Q3): with ``m`` the last episode start in the
    window, every earlier observation is replaced by ``O[m]``, and the unroll starts from zero.
    ``zero_context`` (clean): observations stay; the context is reset to zero at every episode start,
    exactly as the actor does.
    ``stored_context``: ``window.extras`` are the stored per-layer contexts; the burn-in starts from the
    stored context of the window's first step and resets at episode starts like the actor, whatever
    ``replay_padding`` says.
    """
    obs = window.obs
    last = dict(action=window.action[:, -1], reward=window.reward[:, -1], terminated=window.terminated[:, -1],
                next_obs=window.next_obs)
    if stored_context:
        context0 = tuple(c[:, 0].astype(jnp.float32) for c in window.extras)
        return SequenceBatch(obs, window.is_first, context0=context0, **last)
    if replay_padding == "repeat_first":
        m = last_episode_start(window.is_first)
        positions = jnp.maximum(jnp.arange(obs.shape[1])[None, :], m[:, None])
        obs = jnp.take_along_axis(obs, positions[:, :, None], axis=1)
        reset = jnp.zeros(window.is_first.shape, bool)
    elif replay_padding == "zero_context":
        reset = window.is_first
    else:
        raise ValueError(f"unknown replay_padding {replay_padding!r}")
    return SequenceBatch(obs_seq=obs, reset=reset, **last)


class TransitionBatch(NamedTuple):
    """An actor-critic batch of single replayed transitions (``[B]`` leading).

    Attributes:
      obs: ``[B, obs_size]`` float32. action: ``[B, m]`` float32 env action taken, in ``[-1, 1]``.
      reward: ``[B]`` float32. terminated: ``[B]`` bool (no bootstrap). next_obs: ``[B, obs_size]`` float32.
      noise: the stored extras of the step, ``[B, ...]`` each (neuron-local DDPG: its hidden perturbations).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    next_obs: jax.Array
    noise: tuple = ()


def prepare_transitions(window: Window) -> TransitionBatch:
    """Windows of one step (``sequence_length = 1``) -> a :class:`TransitionBatch`."""
    return TransitionBatch(window.obs[:, 0], window.action[:, 0], window.reward[:, 0], window.terminated[:, 0],
                           window.next_obs, tuple(x[:, 0] for x in window.extras))
