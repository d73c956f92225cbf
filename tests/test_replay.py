"""Replay: episode-start padding of sampled windows (spec §4.1, §4.3, quirk Q3) and the flashbax buffer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.replay import Transition, last_episode_start, make_replay_buffer, prepare_sequences

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


def _windows(obs_dtype=np.uint8) -> Transition:
    """[batch, SEQ] windows whose observations identify (window, position): obs[b, k] = [b, 10 + k, 7]."""
    batch = len(IS_FIRST_CASES)
    obs = np.zeros((batch, SEQ, 3), obs_dtype)
    obs[:, :, 0] = np.arange(batch)[:, None]
    obs[:, :, 1] = 10 + np.arange(SEQ)[None, :]
    obs[:, :, 2] = 7
    return Transition(
        obs=jnp.asarray(obs),
        action=jnp.asarray(np.arange(batch * SEQ).reshape(batch, SEQ) % 4, jnp.int32),
        reward=jnp.asarray(np.arange(batch * SEQ).reshape(batch, SEQ) * 0.5, jnp.float32),
        terminated=jnp.asarray(np.arange(batch * SEQ).reshape(batch, SEQ) % 3 == 2),
        next_obs=jnp.asarray(obs + 1),
        is_first=jnp.asarray(np.array([c for c, _ in IS_FIRST_CASES], bool)),
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
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray(seq.next_obs, np.float32)[:, -1])
    # o_t itself is never replaced.
    np.testing.assert_array_equal(np.asarray(batch.obs_seq)[:, -1], np.asarray(seq.obs, np.float32)[:, -1])


def test_zero_context_keeps_observations_and_resets_at_is_first():
    seq = _windows()
    batch = prepare_sequences(seq, "zero_context")
    np.testing.assert_array_equal(np.asarray(batch.obs_seq), np.asarray(seq.obs, np.float32))
    np.testing.assert_array_equal(np.asarray(batch.reset), np.asarray(seq.is_first))


def test_unknown_padding_raises():
    with pytest.raises(ValueError):
        prepare_sequences(_windows(), "bogus")


# ------------------------------------------------------------------------------------------------
# A real flashbax trajectory buffer.
# ------------------------------------------------------------------------------------------------

NUM_ENVS, LANE, STEPS, SEQ_LEN = 3, 40, 60, 5


def _filled_buffer():
    buffer = make_replay_buffer(num_envs=NUM_ENVS, capacity=NUM_ENVS * LANE, batch_size=64, sequence_length=SEQ_LEN)
    example = Transition(jnp.zeros((2,), jnp.float32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32),
                         jnp.zeros((), bool), jnp.zeros((2,), jnp.float32), jnp.zeros((), bool))

    @jax.jit
    def fill():
        def add(state, t):
            env_id = jnp.arange(NUM_ENVS, dtype=jnp.float32)
            tf = jnp.full((NUM_ENVS,), t, jnp.float32)
            tr = Transition(
                obs=jnp.stack([env_id, tf], axis=-1),
                action=jnp.full((NUM_ENVS,), t, jnp.int32),
                reward=100.0 * env_id + tf,
                terminated=jnp.zeros((NUM_ENVS,), bool),
                next_obs=jnp.stack([env_id, tf + 1], axis=-1),
                is_first=jnp.full((NUM_ENVS,), t == 0),
            )
            return buffer.add(state, jax.tree.map(lambda x: x[:, None], tr)), None

        state, _ = jax.lax.scan(add, buffer.init(example), jnp.arange(STEPS))
        return state

    return buffer, fill()


def test_flashbax_windows_stay_in_one_env_and_are_consecutive():
    buffer, state = _filled_buffer()
    sample = jax.jit(lambda s, k: jax.vmap(lambda kk: buffer.sample(s, kk).experience)(jax.random.split(k, 8)))
    exp = jax.device_get(sample(state, jax.random.key(0)))  # [8, 64, SEQ_LEN, ...]
    obs = exp.obs.reshape(-1, SEQ_LEN, 2)
    env_id, t = obs[..., 0], obs[..., 1]
    assert obs.shape[0] == 8 * 64
    # One env id per window, every id sampled.
    assert np.all(env_id == env_id[:, :1])
    assert set(np.unique(env_id).astype(int)) == set(range(NUM_ENVS))
    # Consecutive times: never mixes lanes, never jumps over the write head into older data.
    np.testing.assert_array_equal(np.diff(t, axis=1), np.ones((obs.shape[0], SEQ_LEN - 1)))
    # Only the LANE most recent steps are still stored after wrapping (t = 20..59).
    assert t.min() >= STEPS - LANE and t.max() <= STEPS - 1
    # The other fields travel with their observation.
    np.testing.assert_array_equal(exp.reward.reshape(-1, SEQ_LEN), 100.0 * env_id + t)
    np.testing.assert_array_equal(exp.action.reshape(-1, SEQ_LEN), t.astype(np.int32))
    np.testing.assert_array_equal(exp.next_obs.reshape(-1, SEQ_LEN, 2)[..., 1], t + 1)
    # Sampling covers the stored range: windows end anywhere from the earliest possible to the newest step.
    last = t[:, -1]
    assert last.min() <= STEPS - LANE + SEQ_LEN + 5 and last.max() >= STEPS - 5
