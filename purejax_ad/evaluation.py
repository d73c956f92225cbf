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


def _start(agent, env: Environment, key: jax.Array, num_episodes: int) -> tuple:
    """The evaluation loop's first carry ``(t, key, obs, env_state, context, done, ret)``, ``[P, N]`` envs."""
    P, N = agent.num_eval_policies, num_episodes
    k_reset, k_run = jax.random.split(key)
    obs, env_state = jax.vmap(jax.vmap(env.reset))(jax.random.split(k_reset, P * N).reshape(P, N))
    context = agent.network.initial_context((P, N))
    return (jnp.zeros((), jnp.int32), k_run, obs, env_state, context, jnp.zeros((P, N), bool),
            jnp.zeros((P, N), jnp.float32))


def _step(agent, env: Environment, params: tuple, carry: tuple) -> tuple:
    """One env step of every evaluation episode: ``(carry, reward [P, N])``; ended episodes stop counting."""
    t, key, obs, env_state, context, done, ret = carry
    P, N = done.shape
    if agent.eval_uses_key:
        key, k_act, k_step = jax.random.split(key, 3)
    else:
        (key, k_step), k_act = jax.random.split(key), None
    action, context = agent.eval_policy(params, obs, context, k_act)
    out = jax.vmap(jax.vmap(env.step))(jax.random.split(k_step, P * N).reshape(P, N), env_state, action)
    ret = ret + jnp.where(done, 0.0, out.reward)
    ended = out.terminated | out.truncated
    context = tuple(jnp.where(ended[..., None], 0.0, c) for c in context)
    return (t + 1, key, out.obs, out.state, context, done | ended, ret), out.reward


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

    def cond(carry):
        t, _, _, _, _, done, _ = carry
        return (t < max_steps) & ~jnp.all(done)

    carry = _start(agent, env, key, num_episodes)
    *_, ret = jax.lax.while_loop(cond, lambda carry: _step(agent, env, params, carry)[0], carry)
    return jnp.mean(ret, axis=-1)


def episode_trajectory(agent, env: Environment, params: tuple, key: jax.Array, num_episodes: int, max_steps: int,
                       policy: int, episode: int = 0) -> tuple:
    """The env states of one episode of :func:`evaluate` (same key, episodes and actions), for rendering.

    Runs the evaluation loop of ``evaluate(agent, env, params, key, num_episodes, max_steps)`` until episode
    ``episode`` of policy ``policy`` ends (or ``max_steps``), keeping that episode's env state before each step.

    Returns:
      ``(states, rewards, length)``: ``states`` the env-state pytree with a leading ``[max_steps]`` axis (entry
      ``t``: the state the policy acted in at step ``t``; entries from ``length`` on are padding), ``rewards
      [max_steps]`` float32 (reward of step ``t``), ``length`` ``[]`` int32 steps taken by the episode.
    """

    def pick(tree):
        return jax.tree.map(lambda x: x[policy, episode], tree)

    def cond(loop):
        (t, _, _, _, _, done, _), _, _ = loop
        return (t < max_steps) & ~done[policy, episode]

    def body(loop):
        carry, states, rewards = loop
        t = carry[0]
        states = jax.tree.map(lambda buf, x: buf.at[t].set(x), states, pick(carry[3]))
        carry, reward = _step(agent, env, params, carry)
        return carry, states, rewards.at[t].set(pick(reward))

    carry = _start(agent, env, key, num_episodes)
    states = jax.tree.map(lambda x: jnp.broadcast_to(x, (max_steps, *x.shape)), pick(carry[3]))
    carry, states, rewards = jax.lax.while_loop(cond, body, (carry, states, jnp.zeros((max_steps,), jnp.float32)))
    return states, rewards, carry[0]
