"""DDPG (Lillicrap et al. 2016), the backprop yardstick of the continuous-action agents
(``docs/algorithm.md`` §DDPG).

MLP actor (``net_arch`` hidden, ReLU, tanh output) and MLP critic ``Q(s, a)`` (``net_arch`` hidden, ReLU,
obs and action concatenated at the input), target copies of both. Critic loss ``mean ½(Q(s, a) − y)²``,
``y = r + γ(1 − terminated) Q'(s', μ'(s'))``; then the actor loss ``−mean Q(s, μ(s))`` on the freshly updated
critic. Each network has its own optax chain (global-norm clip -> Adam -> learning rate); exploration adds
Gaussian noise to the actions. ``B`` is the batch, ``m`` the action dimension; actions are in ``[-1, 1]``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejax_ad.actor_critic import ActorCriticAgent, finish_update
from purejax_ad.hyperparams import Hyperparams, optimizer_for
from purejax_ad.replay import TransitionBatch
from purejax_ad.state import LearnerState


class DDPGParams(NamedTuple):
    """``actor`` / ``critic``: tuples of ``(w [in, out], b [out])`` dense layers."""

    actor: tuple
    critic: tuple


def init_mlp(key: jax.Array, sizes: tuple[int, ...], final_scale: float = 3e-3) -> tuple:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]``: uniform ``±1/sqrt(fan_in)``, last layer ``±final_scale``."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        key, kw, kb = jax.random.split(key, 3)
        s = final_scale if i == len(sizes) - 2 else 1.0 / jnp.sqrt(n_in)
        layers.append((jax.random.uniform(kw, (n_in, n_out), minval=-s, maxval=s),
                       jax.random.uniform(kb, (n_out,), minval=-s, maxval=s)))
    return tuple(layers)


def mlp(layers: tuple, x: jax.Array) -> jax.Array:
    """ReLU MLP, linear last layer: ``[..., in] -> [..., out]``."""
    for w, b in layers[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def ddpg_init(key: jax.Array, obs_size: int, action_dim: int, net_arch: tuple[int, ...]) -> DDPGParams:
    """Fresh DDPG parameters: actor MLP ``obs_size -> net_arch -> action_dim`` and critic MLP
    ``obs_size + action_dim -> net_arch -> 1`` (independent keys)."""
    k_actor, k_critic = jax.random.split(key)
    return DDPGParams(init_mlp(k_actor, (obs_size, *net_arch, action_dim)),
                      init_mlp(k_critic, (obs_size + action_dim, *net_arch, 1)))


def ddpg_actor(actor: tuple, obs: jax.Array) -> jax.Array:
    """``μ(s)``: ``[..., obs_size] -> [..., m]`` in ``[-1, 1]``."""
    return jnp.tanh(mlp(actor, obs))


def ddpg_q(critic: tuple, obs: jax.Array, action: jax.Array) -> jax.Array:
    """``Q(s, a)``: ``[..., obs_size], [..., m] -> [...]``."""
    return mlp(critic, jnp.concatenate([obs, action], axis=-1))[..., 0]


def ddpg_target(target: DDPGParams, batch: TransitionBatch, gamma: jax.Array) -> jax.Array:
    """``y = r + γ(1 − terminated) Q'(s', μ'(s'))``: ``[B]``."""
    q_next = ddpg_q(target.critic, batch.next_obs, ddpg_actor(target.actor, batch.next_obs))
    return batch.reward + gamma * (1.0 - batch.terminated.astype(jnp.float32)) * q_next


def ddpg_critic_loss(critic: tuple, batch: TransitionBatch, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(mean ½(Q(s, a) − y)², mean Q(s, a))`` over the batch."""
    q = ddpg_q(critic, batch.obs, batch.action)
    return 0.5 * jnp.mean(jnp.square(q - y)), jnp.mean(q)


def ddpg_update(tx_critic, tx_actor, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams,
                train_frequency: int) -> tuple[LearnerState, dict]:
    """One critic step, then one actor step on the updated critic, then the target update.

    Returns ``(learner, {"td_loss": [1], "q_mean": [1]})`` (pre-update critic loss and mean ``Q(s, a)``).
    """
    params, target = learner.params[0], learner.target_params[0]
    opt_c, opt_a = learner.opt_state
    y = jax.lax.stop_gradient(ddpg_target(target, batch, hyper.gamma))
    (loss, q_mean), g = jax.value_and_grad(ddpg_critic_loss, has_aux=True)(params.critic, batch, y)
    u, opt_c = tx_critic.update(g, opt_c, params.critic)
    critic = optax.apply_updates(params.critic, u)
    g = jax.grad(lambda a: -jnp.mean(ddpg_q(critic, batch.obs, ddpg_actor(a, batch.obs))))(params.actor)
    u, opt_a = tx_actor.update(g, opt_a, params.actor)
    params = DDPGParams(optax.apply_updates(params.actor, u), critic)
    return finish_update(learner, params, (opt_c, opt_a), hyper, train_frequency, loss, q_mean)


class DDPGAgent(ActorCriticAgent):
    """DDPG as a :class:`purejax_ad.state.Agent`: behaviour ``clip(μ(s) + N(0, exploration_noise²), −1, 1)``."""

    def init_params(self, key: jax.Array) -> DDPGParams:
        n = self.network
        return ddpg_init(key, n.obs_size, n.action_dim, n.net_arch)

    def optimizers(self, hyper: Hyperparams):
        c = self.config
        return (optimizer_for(hyper, c.lr_decay_updates),
                optimizer_for(hyper, c.lr_decay_updates, jnp.asarray(c.actor_learning_rate, jnp.float32)))

    def behaviour(self, params: DDPGParams, obs: jax.Array, key: jax.Array):
        action = ddpg_actor(params.actor, obs)
        noise = self.config.exploration_noise * jax.random.normal(key, action.shape)
        return jnp.clip(action + noise, -1.0, 1.0), ()

    def policy(self, actor: tuple, obs: jax.Array) -> jax.Array:
        return ddpg_actor(actor, obs)

    def critic_values(self, params: DDPGParams, batch: TransitionBatch) -> tuple:
        return (ddpg_q(params.critic, batch.obs, batch.action)[:, None],)

    def update_batch(self, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams):
        return ddpg_update(self.tx_critic, self.tx_actor, learner, batch, hyper, self.config.train_frequency)


def make_agent(config, env, spec) -> DDPGAgent:
    """The agent factory of the ``ddpg-mlp`` row of :data:`purejax_ad.algos.ALGO_SPECS`."""
    return DDPGAgent(config, env)
