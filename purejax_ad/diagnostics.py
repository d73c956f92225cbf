"""Diagnostics of the actor-critic agents that need more than one replayed batch: Monte-Carlo returns of the
stored episodes, and how well each layer's critics track them (``docs/algorithm.md`` §Diagnostics).

A critic ``Q(s, a)`` learned from replay estimates the return of the policies that filled the buffer, so on
replayed steps whose episode is complete in the buffer its values should correlate with the discounted return
actually observed from there. :func:`critic_return_correlation` measures that per neuron (Pearson, over
replayed steps) and averages it within each layer: a critic that has stopped tracking returns (flat, diverged,
or dominated by its action term) shows up as a correlation near 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejax_ad.replay import TERMINATED, TRUNCATED, Replay, ReplayState, TransitionBatch

#: Replayed steps per evaluation of :func:`critic_return_correlation`.
NUM_RETURN_SAMPLES = 1024



def discounted_returns(reward: jax.Array, ended: jax.Array, valid: jax.Array, gamma: jax.Array):
    """Monte-Carlo returns of stored episodes: ``G_t = r_t + γ G_{t+1}``, cut where an episode ends.

    Args:
      reward / ended / valid: ``[lanes, T]`` in time order; ``ended``: the step ended its episode (terminated or
        truncated); ``valid``: the slot holds data.
      gamma: ``[]`` discount.

    Returns:
      ``(G [lanes, T], complete [lanes, T])``: ``complete`` where the episode ends within the stored steps, so
      that ``G`` is its full discounted return from that step (elsewhere ``G`` is cut at the newest step).
    """
    def back(carry, x):
        g, done = carry
        r, end, ok = x
        g = jnp.where(ok, r + gamma * jnp.where(end, 0.0, g), 0.0)
        done = ok & (end | done)
        return (g, done), (g, done)

    lanes = reward.shape[0]
    start = (jnp.zeros((lanes,), jnp.float32), jnp.zeros((lanes,), bool))
    _, (g, done) = jax.lax.scan(back, start, (reward.T, ended.T, valid.T), reverse=True)
    return g.T, done.T


def sample_with_returns(replay: Replay, state: ReplayState, key: jax.Array, num_samples: int, gamma: jax.Array):
    """Replayed steps drawn uniformly from those whose episode is complete in the buffer, with their
    Monte-Carlo returns (for judging a critic; ``docs/algorithm.md`` §Diagnostics).

    Returns:
      ``(batch, returns [n], any_complete [])``: ``batch`` a :class:`TransitionBatch` of ``n = num_samples``
      single steps (its ``next_obs`` is zeros, unused), ``returns`` their discounted returns to the episode's end
      (:func:`discounted_returns`); ``any_complete`` is False while no stored episode has ended (the draws are
      then meaningless).
    """
    exp = state.steps.experience
    lanes, steps = exp.reward.shape[:2]
    max_time = jnp.where(state.steps.is_full, steps, state.steps.current_index)
    head = jnp.where(state.steps.is_full, state.steps.current_index, 0)
    physical = (head + jnp.arange(steps)) % steps  # logical position (0 = oldest) -> slot
    ended = (exp.flags[:, physical] & (TERMINATED | TRUNCATED)) > 0
    valid = jnp.broadcast_to(jnp.arange(steps) < max_time, (lanes, steps))
    g, complete = discounted_returns(exp.reward[:, physical], ended, valid, gamma)
    weight = complete.reshape(-1).astype(jnp.float32)
    total = jnp.sum(weight)
    pick = jax.random.choice(key, lanes * steps, (num_samples,), p=weight / jnp.maximum(total, 1.0))
    lane, logical = pick // steps, pick % steps
    step = jax.tree.map(lambda x: x[lane, physical[logical]], exp)
    action = step.action.astype(jnp.int32) if jnp.issubdtype(step.action.dtype, jnp.integer) else step.action
    obs = replay.codec.decode(step.obs)
    batch = TransitionBatch(obs, action, step.reward, (step.flags & TERMINATED) > 0, jnp.zeros_like(obs),
                            tuple(step.extras))
    return batch, g[lane, logical], total > 0


def critic_return_correlation(values: tuple, returns: jax.Array, any_complete: jax.Array) -> jax.Array:
    """``[L]`` mean over each layer's critics of the Pearson correlation of its values with ``returns``.

    Args:
      values: per layer ``[n, d_l]`` critic values ``Q^j(s_i, a_i)`` on replayed steps (``d_l`` critics).
      returns: ``[n]`` their Monte-Carlo returns (:func:`sample_with_returns`).
      any_complete: ``[]`` False: no complete episode yet, every entry NaN.

    Returns:
      ``[L]`` float32; a critic with constant values (e.g. untrained zeros) counts as NaN and is left out of its
      layer's mean (all NaN: NaN).
    """
    g = returns - jnp.mean(returns)
    out = []
    for q in values:
        qc = q - jnp.mean(q, axis=0)
        denominator = jnp.sqrt(jnp.sum(qc**2, axis=0) * jnp.sum(g**2))
        corr = jnp.where(denominator > 0, (g @ qc) / jnp.where(denominator > 0, denominator, 1.0), jnp.nan)
        out.append(jnp.nanmean(corr))
    return jnp.where(any_complete, jnp.stack(out), jnp.nan).astype(jnp.float32)
