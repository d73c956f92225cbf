"""Evaluation episodes: one loop for every agent (``docs/algorithm.md`` §Evaluation).

``P`` policies x ``num_episodes`` episodes run side by side on fresh env instances in one
``lax.while_loop`` that stops when every episode has ended (or at ``max_steps``). A Q-learning agent
evaluates every layer prefix (``P = L``), an actor-critic agent its noise-free policy (``P = 1``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejax_ad.envs import Environment


def epsilon_greedy(key: jax.Array, q_values: jax.Array, epsilon: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Epsilon-greedy actions.

    Args:
      q_values: ``[..., A]``. epsilon: scalar probability of a uniform random action.

    Returns:
      ``(action [...] int32, explored [...] bool)``.
    """
    k_explore, k_action = jax.random.split(key)
    explore = jax.random.uniform(k_explore, q_values.shape[:-1]) < epsilon
    random_action = jax.random.randint(k_action, q_values.shape[:-1], 0, q_values.shape[-1])
    action = jnp.where(explore, random_action, jnp.argmax(q_values, axis=-1)).astype(jnp.int32)
    return action, explore


def evaluate(agent, env: Environment, params: tuple, key: jax.Array, num_episodes: int,
             max_steps: int) -> jax.Array:
    """Mean undiscounted return of each of the agent's evaluation policies.

    Args:
      agent: a :class:`purejax_ad.state.Agent` (its ``eval_policy``, ``num_eval_policies``, ``eval_uses_key``
        and ``network.initial_context``).
      params: the agent's online parameters.
      num_episodes: ``N`` episodes per policy. max_steps: cap on the episode length (env steps).

    Returns:
      ``[P]``: entry ``i`` is the mean return of policy ``i`` over its ``N`` episodes.
    """
    P, N = agent.num_eval_policies, num_episodes
    k_reset, k_run = jax.random.split(key)
    obs, env_state = jax.vmap(jax.vmap(env.reset))(jax.random.split(k_reset, P * N).reshape(P, N))
    context = agent.network.initial_context((P, N))

    def cond(carry):
        t, _, _, _, _, done, _ = carry
        return (t < max_steps) & ~jnp.all(done)

    def body(carry):
        t, key, obs, env_state, context, done, ret = carry
        if agent.eval_uses_key:
            key, k_act, k_step = jax.random.split(key, 3)
        else:
            (key, k_step), k_act = jax.random.split(key), None
        action, context = agent.eval_policy(params, obs, context, k_act)
        out = jax.vmap(jax.vmap(env.step))(jax.random.split(k_step, P * N).reshape(P, N), env_state, action)
        ret = ret + jnp.where(done, 0.0, out.reward)
        ended = out.terminated | out.truncated
        context = tuple(jnp.where(ended[..., None], 0.0, c) for c in context)
        return t + 1, key, out.obs, out.state, context, done | ended, ret

    carry = (jnp.zeros((), jnp.int32), k_run, obs, env_state, context, jnp.zeros((P, N), bool),
             jnp.zeros((P, N), jnp.float32))
    *_, ret = jax.lax.while_loop(cond, body, carry)
    return jnp.mean(ret, axis=-1)
