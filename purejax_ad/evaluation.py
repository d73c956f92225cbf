"""Per-layer evaluation (spec §6.3): epsilon-greedy episodes of every policy "mean of layers 1..i".

All ``L`` policies x ``num_episodes`` episodes run side by side on fresh env instances in one
``lax.while_loop`` that stops when every episode has ended (or at ``max_steps``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejax_ad.envs import Environment
from purejax_ad.network import ADNetwork, Params, prefix_mean_weights  # noqa: F401 (re-exported)


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


def evaluate(
    network: ADNetwork,
    env: Environment,
    params: Params,
    key: jax.Array,
    num_episodes: int,
    epsilon: float,
    max_steps: int,
    advance_context_on_random_action: bool,
) -> jax.Array:
    """Mean undiscounted return of each prefix policy.

    Returns:
      ``[L]``: entry ``i`` is the mean return over ``num_episodes`` episodes of the policy acting on
      the mean Q of layers ``1..i+1`` (layer ``i+1`` alone when the network does not average predictions) (full-network forward, contexts carried, quirk Q2 applied).
    """
    L = network.num_layers
    weights = network.policy_weights()
    k_reset, k_run = jax.random.split(key)
    reset_keys = jax.random.split(k_reset, L * num_episodes).reshape(L, num_episodes)
    obs, env_state = jax.vmap(jax.vmap(env.reset))(reset_keys)
    context = network.initial_context((L, num_episodes))
    done = jnp.zeros((L, num_episodes), bool)
    ret = jnp.zeros((L, num_episodes), jnp.float32)

    def cond(carry):
        t, _, _, _, _, done, _ = carry
        return (t < max_steps) & ~jnp.all(done)

    def body(carry):
        t, key, obs, env_state, context, done, ret = carry
        key, k_act, k_step = jax.random.split(key, 3)
        q, new_context, _ = network.step(params, obs, context)  # [L_layers, L_policies, N, A]
        q_policy = jnp.einsum("pl,lpna->pna", weights, network.q_values(q))
        action, explored = epsilon_greedy(k_act, q_policy, epsilon)
        if not advance_context_on_random_action:
            new_context = tuple(jnp.where(explored[..., None], c, n) for c, n in zip(context, new_context))
        step_keys = jax.random.split(k_step, L * num_episodes).reshape(L, num_episodes)
        out = jax.vmap(jax.vmap(env.step))(step_keys, env_state, action)
        ret = ret + jnp.where(done, 0.0, out.reward)
        ended = out.terminated | out.truncated
        new_context = tuple(jnp.where(ended[..., None], 0.0, c) for c in new_context)
        return t + 1, key, out.obs, out.state, new_context, done | ended, ret

    carry = (jnp.zeros((), jnp.int32), k_run, obs, env_state, context, done, ret)
    *_, ret = jax.lax.while_loop(cond, body, carry)
    return jnp.mean(ret, axis=-1)
