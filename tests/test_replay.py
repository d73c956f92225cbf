"""Replay: episode-start padding of sampled windows (quirk Q3) and the compact buffer against an
uncompressed reference buffer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typing import NamedTuple

import flashbax as fbx

from purejax_ad.replay import (IS_FIRST, TERMINATED, TRUNCATED, ObsCodec, StoredStep, Window, action_dtype,
                               last_episode_start, make_replay, pack_flags, prepare_sequences, sample_indices)

SEQ = 6
# Hand-made is_first patterns, one window each, with the episode start m the spec's rule gives
# ("the last position with is_first", 0 when there is none).
IS_FIRST_CASES = [
    ([0, 0, 0, 1, 0, 0], 3),  # episode started inside the window
    ([0, 0, 0, 0, 0, 0], 0),  # no start: plain window
    ([0, 1, 0, 0, 1, 0], 4),  # two starts: the last one counts
    ([1, 0, 0, 0, 0, 0], 0),  # start at the first position
    ([0, 0, 0, 0, 0, 1], 5),  # o_t itself is the first observation of its episode
    ([1, 1, 1, 1, 1, 1], 5),  # 1-step episodes
]


def _windows() -> Window:
    """[batch, SEQ] windows whose observations identify (window, position): obs[b, k] = [b, 10 + k, 7]."""
    batch = len(IS_FIRST_CASES)
    obs = np.zeros((batch, SEQ, 3), np.float32)
    obs[:, :, 0] = np.arange(batch)[:, None]
    obs[:, :, 1] = 10 + np.arange(SEQ)[None, :]
    obs[:, :, 2] = 7
    return Window(
        obs=jnp.asarray(obs),
        action=jnp.asarray(np.arange(batch * SEQ).reshape(batch, SEQ) % 4, jnp.int32),
        reward=jnp.asarray(np.arange(batch * SEQ).reshape(batch, SEQ) * 0.5, jnp.float32),
        terminated=jnp.asarray(np.arange(batch * SEQ).reshape(batch, SEQ) % 3 == 2),
        truncated=jnp.zeros((batch, SEQ), bool),
        is_first=jnp.asarray(np.array([c for c, _ in IS_FIRST_CASES], bool)),
        next_obs=jnp.asarray(obs[:, -1] + 1),
    )


def test_last_episode_start_hand_cases():
    is_first = jnp.asarray(np.array([c for c, _ in IS_FIRST_CASES], bool))
    expected = [m for _, m in IS_FIRST_CASES]
    np.testing.assert_array_equal(np.asarray(last_episode_start(is_first)), expected)
    # Leading axes beyond one batch axis.
    np.testing.assert_array_equal(np.asarray(last_episode_start(is_first.reshape(2, 3, SEQ))),
                                  np.array(expected).reshape(2, 3))


def test_repeat_first_padding_hand_cases():
    seq = _windows()
    batch = prepare_sequences(seq, "repeat_first")
    raw = np.asarray(seq.obs, np.float32)
    out = np.asarray(batch.obs_seq)
    assert out.dtype == np.float32 and out.shape == raw.shape
    for b, (_, m) in enumerate(IS_FIRST_CASES):
        for k in range(SEQ):
            expected = raw[b, m] if k < m else raw[b, k]
            np.testing.assert_array_equal(out[b, k], expected, err_msg=f"window {b} position {k}")
    # Explicit spot checks of the first case (is_first at 3): positions 0..2 hold obs[3].
    np.testing.assert_array_equal(out[0, :, 1], [13, 13, 13, 13, 14, 15])
    np.testing.assert_array_equal(out[1, :, 1], [10, 11, 12, 13, 14, 15])
    np.testing.assert_array_equal(out[2, :, 1], [14, 14, 14, 14, 14, 15])
    # The unroll starts from zero: no reset anywhere in this mode.
    assert not np.any(np.asarray(batch.reset))


@pytest.mark.parametrize("padding", ["repeat_first", "zero_context"])
def test_prepare_sequences_takes_last_transition(padding):
    seq = _windows()
    batch = prepare_sequences(seq, padding)
    np.testing.assert_array_equal(np.asarray(batch.action), np.asarray(seq.action)[:, -1])
    np.testing.assert_array_equal(np.asarray(batch.reward), np.asarray(seq.reward)[:, -1])
    np.testing.assert_array_equal(np.asarray(batch.terminated), np.asarray(seq.terminated)[:, -1])
    assert batch.next_obs.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(seq.next_obs))
    # o_t itself is never replaced.
    np.testing.assert_array_equal(np.asarray(batch.obs_seq)[:, -1], np.asarray(seq.obs, np.float32)[:, -1])


def test_zero_context_keeps_observations_and_resets_at_is_first():
    seq = _windows()
    batch = prepare_sequences(seq, "zero_context")
    np.testing.assert_array_equal(np.asarray(batch.obs_seq), np.asarray(seq.obs))
    np.testing.assert_array_equal(np.asarray(batch.reset), np.asarray(seq.is_first))


def test_unknown_padding_raises():
    with pytest.raises(ValueError):
        prepare_sequences(_windows(), "bogus")


# ------------------------------------------------------------------------------------------------
# The compact buffer against an uncompressed reference buffer (obs and next_obs in full, one field each).
# ------------------------------------------------------------------------------------------------


class FullTransition(NamedTuple):
    """What the buffer stored before it was made compact: both observations in full, flags as bools."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    is_first: jax.Array
    context: tuple


NUM_ENVS, LANE, MAX_EPISODE, OBS = 3, 16, 6, 37  # 37 cells: the packed bytes end in a partial byte


def _stream(rng, num_steps, binary, truncation_starts_episode=True):
    """A synthetic multi-lane env stream with terminations (p = 0.15) and time-limit truncations at
    MAX_EPISODE steps; every observation is distinct. Yields per step: (obs, action, reward, terminated,
    truncated, final_obs, is_first, context, next actor obs)."""
    draw = (lambda: rng.integers(0, 2, (NUM_ENVS, OBS)).astype(np.float32)) if binary else (
        lambda: rng.normal(size=(NUM_ENVS, OBS)).astype(np.float32))
    obs, time, is_first = draw(), np.zeros(NUM_ENVS, int), np.ones(NUM_ENVS, bool)
    for _ in range(num_steps):
        final = draw()
        terminated = rng.random(NUM_ENVS) < 0.15
        time = time + 1
        truncated = (time >= MAX_EPISODE) & ~terminated
        ended = terminated | truncated
        reset = draw()
        next_obs = np.where(ended[:, None], reset, final)
        context = (rng.normal(size=(NUM_ENVS, 4)).astype(np.float32), rng.normal(size=(NUM_ENVS, 2)).astype(np.float32))
        yield (obs, rng.integers(0, 5, NUM_ENVS), rng.normal(size=NUM_ENVS).astype(np.float32), terminated, truncated,
               final, is_first, context, next_obs)
        starts = ended if truncation_starts_episode else terminated
        obs, time, is_first = next_obs, np.where(ended, 0, time), starts


def _fill_both(binary, num_steps, seq_len, seed=0):
    """The compact buffer and the reference buffer after the same stream; returns both states, the buffers
    and the actor's current observations."""
    codec = ObsCodec(OBS, "bits" if binary else "float32")
    replay = make_replay(codec, NUM_ENVS, NUM_ENVS * LANE, 64, seq_len, MAX_EPISODE)
    reference = fbx.make_trajectory_buffer(add_batch_size=NUM_ENVS, sample_batch_size=64, sample_sequence_length=seq_len,
                                           period=1, min_length_time_axis=seq_len, max_length_time_axis=LANE)
    zeros_ctx = (jnp.zeros((4,)), jnp.zeros((2,)))
    state = replay.init(StoredStep(codec.encode(jnp.zeros((OBS,))), jnp.zeros((), action_dtype(5)), jnp.zeros(()),
                                   jnp.zeros((), jnp.uint8), zeros_ctx))
    ref = reference.init(FullTransition(jnp.zeros((OBS,)), jnp.zeros((), jnp.int32), jnp.zeros(()), jnp.zeros((), bool),
                                        jnp.zeros((), bool), jnp.zeros((OBS,)), jnp.zeros((), bool), zeros_ctx))
    add = jax.jit(replay.add)
    ref_add = jax.jit(reference.add)
    current = None
    for obs, action, reward, term, trunc, final, first, context, current in _stream(np.random.default_rng(seed),
                                                                                     num_steps, binary):
        step = StoredStep(codec.encode(jnp.asarray(obs)), jnp.asarray(action, action_dtype(5)), jnp.asarray(reward),
                          pack_flags(jnp.asarray(term), jnp.asarray(trunc), jnp.asarray(first)), context)
        state = add(state, step, jnp.asarray(final))
        full = FullTransition(jnp.asarray(obs), jnp.asarray(action, jnp.int32), jnp.asarray(reward), jnp.asarray(term),
                              jnp.asarray(trunc), jnp.asarray(final), jnp.asarray(first), context)
        ref = ref_add(ref, jax.tree.map(lambda x: x[:, None], full))
    return replay, state, reference, ref, jnp.asarray(current)


def _reference_window(reference, ref, key) -> Window:
    """The reference buffer's sample for ``key``; a terminated step's next observation is never read, and the
    compact buffer does not keep it: it is zero in both."""
    seq = reference.sample(ref, key).experience
    next_obs = jnp.where(seq.terminated[:, -1, None], 0.0, seq.next_obs[:, -1])
    return Window(seq.obs, seq.action, seq.reward, seq.terminated, seq.truncated, seq.is_first, next_obs, seq.context)


@pytest.mark.parametrize("binary", [True, False], ids=["bit-packed", "float32"])
@pytest.mark.parametrize("num_steps", [9, 16, 47, 70], ids=lambda n: f"{n}steps")
def test_compact_buffer_samples_equal_the_reference_buffer(binary, num_steps):
    """Field by field and for the same keys, the compact buffer's windows equal the uncompressed buffer's,
    before the lanes fill, at full, and after wrapping several times; the windows include terminations,
    truncations (true final observations from the side table) and each lane's newest step."""
    seq_len = 4
    replay, state, reference, ref, current = _fill_both(binary, num_steps, seq_len)
    sample = jax.jit(lambda s, k: replay.sample(s, k, current))
    ref_sample = jax.jit(lambda r, k: _reference_window(reference, r, k))
    seen = dict(terminated=0, truncated=0, crosses_episode=0, newest=0)
    for i in range(12):
        key = jax.random.key(100 + i)
        got, want = jax.device_get(sample(state, key)), jax.device_get(ref_sample(ref, key))
        assert got.obs.dtype == np.float32 and got.action.dtype == np.int32
        for name in Window._fields:
            jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b, err_msg=name), getattr(got, name),
                         getattr(want, name))
        seen["terminated"] += int(want.terminated[:, -1].sum())
        seen["truncated"] += int(want.truncated[:, -1].sum())
        seen["crosses_episode"] += int(want.is_first[:, 1:].any(axis=1).sum())
        seen["newest"] += int(np.all(np.asarray(want.next_obs)[:, None] == np.asarray(current)[None], axis=-1).sum())
    if num_steps >= 16:  # enough steps for every kind of window to be drawn
        assert all(v > 0 for v in seen.values()), seen


@pytest.mark.parametrize("padding", ["repeat_first", "zero_context"])
@pytest.mark.parametrize("stored_context", [False, True], ids=["replayed-context", "stored-context"])
def test_compact_buffer_batches_equal_the_reference_batches(padding, stored_context):
    """The training batch built from either buffer is the same, under both padding rules and both context
    sources (stored contexts come back from the first step of the window)."""
    seq_len = 3 if stored_context else 5
    replay, state, reference, ref, current = _fill_both(True, 53, seq_len, seed=4)
    for i in range(6):
        key = jax.random.key(i)
        got = prepare_sequences(replay.sample(state, key, current), padding, stored_context)
        want = prepare_sequences(_reference_window(reference, ref, key), padding, stored_context)
        assert (got.context0 is not None) == stored_context
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(got), jax.device_get(want))


def test_sample_indices_are_flashbax_windows():
    """The compact sampler draws exactly flashbax's windows (same key -> same lanes and times), so runs keep
    their random stream: checked on a buffer whose entries are their own (lane, time)."""
    buffer = fbx.make_trajectory_buffer(add_batch_size=NUM_ENVS, sample_batch_size=32, sample_sequence_length=4,
                                        period=1, min_length_time_axis=4, max_length_time_axis=LANE)
    state = buffer.init((jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)))
    for t in range(37):
        state = buffer.add(state, (jnp.arange(NUM_ENVS)[:, None], jnp.full((NUM_ENVS, 1), t % LANE)))
        if t in (5, 15, 36):
            for i in range(4):
                lane_fbx, time_fbx = buffer.sample(state, jax.random.key(i)).experience
                lane, time, _, _ = sample_indices(state, jax.random.key(i), 32, 4)
                np.testing.assert_array_equal(np.asarray(lane_fbx), np.broadcast_to(np.asarray(lane)[:, None], (32, 4)))
                np.testing.assert_array_equal(np.asarray(time_fbx), np.asarray(time))


def test_bit_codec_is_lossless_and_eight_cells_a_byte():
    rng = np.random.default_rng(0)
    codec = ObsCodec(400, "bits")  # Breakout-MinAtar: 10 x 10 x 4 cells
    obs = rng.integers(0, 2, (5, 400)).astype(np.float32)
    packed = codec.encode(jnp.asarray(obs))
    assert packed.shape == (5, 50) and packed.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(codec.decode(packed)), obs)
    # Cell k is bit 7 - k % 8 of byte k // 8 (numpy's big-endian packbits): recomputed by hand.
    np.testing.assert_array_equal(np.asarray(packed), (obs.reshape(5, 50, 8) * 2 ** np.arange(7, -1, -1)).sum(-1))


def test_flags_and_action_dtypes():
    flags = pack_flags(jnp.array([1, 0, 0, 1], bool), jnp.array([0, 1, 0, 0], bool), jnp.array([0, 1, 1, 1], bool))
    np.testing.assert_array_equal(np.asarray(flags), [TERMINATED, TRUNCATED | IS_FIRST, IS_FIRST, TERMINATED | IS_FIRST])
    assert flags.dtype == jnp.uint8
    assert action_dtype(3) == jnp.uint8 and action_dtype(256) == jnp.uint8 and action_dtype(4096) == jnp.uint16


def test_a_truncation_more_often_than_the_time_limit_is_loud():
    """The side table assumes one truncation per lane per ``max_episode_steps``; should an env break that, the
    sampled next observation is NaN (the run's NaN check stops it) instead of another step's final obs."""
    codec = ObsCodec(2, "float32")
    replay = make_replay(codec, 1, 8, 16, 1, max_episode_steps=4)
    state = replay.init(StoredStep(jnp.zeros((2,)), jnp.zeros((), jnp.uint8), jnp.zeros(()), jnp.zeros((), jnp.uint8)))
    for t in range(8):  # truncated every step: blocks of 4 steps share a side slot
        step = StoredStep(jnp.full((1, 2), t, jnp.float32), jnp.zeros((1,), jnp.uint8), jnp.zeros((1,)),
                          pack_flags(jnp.zeros(1, bool), jnp.ones(1, bool), jnp.zeros(1, bool)))
        state = replay.add(state, step, jnp.full((1, 2), 100.0 + t))
    window = replay.sample(state, jax.random.key(0), jnp.zeros((1, 2)))
    t = np.asarray(window.obs)[:, 0, 0]
    next_obs = np.asarray(window.next_obs)[:, 0]
    # Within a block only the block's last truncation survives; every step reads that one value.
    np.testing.assert_array_equal(next_obs, 100.0 + (t // 4) * 4 + 3)
