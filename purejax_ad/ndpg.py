"""Neuron-local DDPG: every neuron of a tanh actor is an agent with its own critic; no gradient crosses
a neuron (``docs/algorithm.md`` §Neuron-local DDPG).

Layer ``l`` has incoming weights ``K_l [d_l, d_{l-1} + 1]`` (bias last) and computes ``x_l = tanh(K_l v_l)``,
``v_l = [x_{l-1}; 1]``, ``x_0`` the observation; the output layer's units are the env actions. Neuron ``n``
has state ``v`` (its layer's input) and action ``a^n`` (its output) and a critic ``Q^n(v, a)``:

* ``"linear"``: ``Q^n(v, a) = θ_vᵀ v + θ_a a``, so ``∇_a Q^n = θ_a`` is constant;
* ``"compatible"``: ``Q^n(v, a) = (a − μ^n(v)) σ'(K^n v) vᵀ w_n + u_nᵀ v`` with ``μ^n(v) = tanh(K^n v)``, so
  ``∇_a Q^n = σ'(K^n v) vᵀ w_n``; at the target actor's ``a' = μ'^n(v')`` the target is ``u'_nᵀ v'``.

Both use the per-neuron TD error ``D = r + γ(1 − terminated) Q'^n(v', a'^n) − Q^n(v, a)``, the critic
semi-gradient of ``½D²`` and the local deterministic policy gradient ``ΔK^n ∝ mean_i ∇_a Q^n σ'(K^n v_i) v_i``,
written out in :func:`ndpg_layer_grads` and applied by plain SGD. Behaviour: hidden pre-activations are
perturbed, ``tanh(K v + ξ)``, ``ξ ~ N(0, node_noise²)`` (stored with the transition and replayed), and
the outputs get DDPG action noise. ``B`` is the batch, ``d_l`` the width of layer ``l``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejax_ad.actor_critic import ActorCriticAgent, finish_update
from purejax_ad.ddpg import init_mlp
from purejax_ad.hyperparams import Hyperparams
from purejax_ad.replay import TransitionBatch
from purejax_ad.state import LearnerState


@optax.inject_hyperparams
def local_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Plain SGD, ``param -= learning_rate * grad``: a global clip or Adam would couple the neurons."""
    return optax.sgd(learning_rate)


class NDPGParams(NamedTuple):
    """``actor``: per layer ``K_l [d_l, in_l + 1]`` (bias last). ``critic``: per layer a dict of
    ``[d_l, in_l + 1]`` / ``[d_l]`` arrays, rows = neurons (``theta_v``, ``theta_a`` or ``w``, ``u``)."""

    actor: tuple
    critic: tuple


def with_bias(x: jax.Array) -> jax.Array:
    """``[..., n] -> [..., n + 1]``, a trailing 1."""
    return jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)


def ndpg_init(key: jax.Array, obs_size: int, action_dim: int, net_arch: tuple[int, ...],
              critic: str = "linear") -> NDPGParams:
    """Actor: uniform ``±1/sqrt(fan_in)`` (output layer ``±3e-3``); critics: zeros."""
    sizes = (obs_size, *net_arch, action_dim)
    layers = init_mlp(key, sizes)
    actor = tuple(jnp.concatenate([w.T, b[:, None]], axis=1) for w, b in layers)
    critics = []
    for k in actor:
        if critic == "linear":
            critics.append({"theta_v": jnp.zeros_like(k), "theta_a": jnp.zeros(k.shape[:1])})
        elif critic == "compatible":
            critics.append({"w": jnp.zeros_like(k), "u": jnp.zeros_like(k)})
        else:
            raise ValueError(f"ndpg_critic must be 'linear' or 'compatible', got {critic!r}")
    return NDPGParams(actor, tuple(critics))


def ndpg_forward(actor: tuple, obs: jax.Array, noise: tuple | None = None, taken_action: jax.Array | None = None):
    """Replay the actor on ``obs [..., obs_size]``.

    Args:
      noise: per hidden layer ``[..., d_l]`` pre-activation perturbations (``None``: noise-free).
      taken_action: ``[..., m]`` the output layer's taken outputs (``None``: ``tanh(K v)``).

    Returns:
      ``(v, a, z)``, per layer: inputs ``[..., in_l + 1]``, taken outputs ``[..., d_l]``, noise-free
      pre-activations ``K_l v_l`` ``[..., d_l]``.
    """
    vs, acts, zs = [], [], []
    x = obs
    for l, k in enumerate(actor):
        v = with_bias(x)
        z = v @ k.T
        last = l == len(actor) - 1
        if last:
            x = jnp.tanh(z) if taken_action is None else taken_action
        else:
            x = jnp.tanh(z if noise is None else z + noise[l])
        vs.append(v), acts.append(x), zs.append(z)
    return tuple(vs), tuple(acts), tuple(zs)


def ndpg_policy(actor: tuple, obs: jax.Array) -> jax.Array:
    """Noise-free ``μ(s)``: ``[..., obs_size] -> [..., m]``."""
    return ndpg_forward(actor, obs)[1][-1]


def ndpg_explore(actor: tuple, obs: jax.Array, key: jax.Array, node_noise: float, exploration_noise: float):
    """Behaviour policy: ``(action [..., m], noise per hidden layer [..., d_l])`` (module docstring)."""
    keys = jax.random.split(key, len(actor))
    noise = tuple(node_noise * jax.random.normal(keys[l], (*obs.shape[:-1], k.shape[0]))
                  for l, k in enumerate(actor[:-1]))
    mean = ndpg_forward(actor, obs, noise)[1][-1]
    eps = exploration_noise * jax.random.normal(keys[-1], mean.shape)
    return jnp.clip(mean + eps, -1.0, 1.0), noise


def ndpg_layer_grads(kind: str, k: jax.Array, critic: dict, target_critic: dict, v, a, z, v_next, a_next,
                     reward, discount):
    """The local rules of one layer's neurons, written out (descent directions, means over the batch).

    Args:
      k: ``[d, in+1]`` weights. critic / target_critic: this layer's critics.
      v: ``[B, in+1]`` replayed inputs. a: ``[B, d]`` taken outputs. z: ``[B, d]`` ``v Kᵀ``.
      v_next / a_next: ``[B, in+1]`` / ``[B, d]`` target-actor inputs and outputs on the next obs.
      reward: ``[B]``. discount: ``[B]`` ``γ(1 − terminated)``.

    Returns:
      ``(critic_grads, actor_grad [d, in+1], D [B, d], Q [B, d])``.
    """
    n = v.shape[0]
    mu = jnp.tanh(z)
    s = 1.0 - mu**2  # σ'(K v)
    if kind == "linear":
        q = v @ critic["theta_v"].T + a * critic["theta_a"]
        q_next = v_next @ target_critic["theta_v"].T + a_next * target_critic["theta_a"]
        dq_da = jnp.broadcast_to(critic["theta_a"], q.shape)
    else:
        g = v @ critic["w"].T  # vᵀ w_n
        q = (a - mu) * s * g + v @ critic["u"].T
        q_next = v_next @ target_critic["u"].T  # a' = μ'(v'): the advantage term is 0
        dq_da = s * g
    d = reward[:, None] + discount[:, None] * q_next - q
    if kind == "linear":
        grads = {"theta_v": -(d.T @ v) / n, "theta_a": -jnp.sum(d * a, axis=0) / n}
    else:
        grads = {"w": -((d * (a - mu) * s).T @ v) / n, "u": -(d.T @ v) / n}
    actor_grad = -((dq_da * s).T @ v) / n
    return grads, actor_grad, d, q


def ndpg_local_grads(kind: str, params: NDPGParams, target: NDPGParams, batch: TransitionBatch, gamma: jax.Array):
    """Every neuron's local critic and actor gradients on ``batch`` (no backpropagation).

    Returns:
      ``(NDPGParams of gradients, td_loss [], q_mean [])``: the losses are means over neurons of
      ``mean_i ½ D²`` and of ``mean_i Q^n(v_i, a_i)``.
    """
    v, a, z = ndpg_forward(params.actor, batch.obs, batch.noise, batch.action)
    v_next, a_next, _ = ndpg_forward(target.actor, batch.next_obs)
    discount = gamma * (1.0 - batch.terminated.astype(jnp.float32))
    critic_g, actor_g, d_all, q_all = [], [], [], []
    for l in range(len(params.actor)):
        cg, ag, d, q = ndpg_layer_grads(kind, params.actor[l], params.critic[l], target.critic[l], v[l], a[l],
                                        z[l], v_next[l], a_next[l], batch.reward, discount)
        critic_g.append(cg), actor_g.append(ag), d_all.append(d), q_all.append(q)
    d = jnp.concatenate(d_all, axis=1)
    q = jnp.concatenate(q_all, axis=1)
    return NDPGParams(tuple(actor_g), tuple(critic_g)), 0.5 * jnp.mean(d**2), jnp.mean(q)


def ndpg_update(kind: str, tx_critic, tx_actor, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams,
                train_frequency: int) -> tuple[LearnerState, dict]:
    """One simultaneous local step of every neuron's critic and weights, then the target update.

    Returns ``(learner, {"td_loss": [1], "q_mean": [1]})`` (pre-update, means over all neurons).
    """
    params, target = learner.params[0], learner.target_params[0]
    opt_c, opt_a = learner.opt_state
    grads, loss, q_mean = ndpg_local_grads(kind, params, target, batch, hyper.gamma)
    u, opt_c = tx_critic.update(grads.critic, opt_c, params.critic)
    critic = optax.apply_updates(params.critic, u)
    u, opt_a = tx_actor.update(grads.actor, opt_a, params.actor)
    params = NDPGParams(optax.apply_updates(params.actor, u), critic)
    return finish_update(learner, params, (opt_c, opt_a), hyper, train_frequency, loss, q_mean)


class NDPGAgent(ActorCriticAgent):
    """Neuron-local DDPG as a :class:`purejax_ad.state.Agent` (``Config.ndpg_critic``: the per-neuron critic)."""

    def init_params(self, key: jax.Array) -> NDPGParams:
        n = self.network
        return ndpg_init(key, n.obs_size, n.action_dim, n.net_arch, self.config.ndpg_critic)

    def optimizers(self, hyper: Hyperparams):
        return local_optimizer(hyper.learning_rate), local_optimizer(jnp.asarray(self.config.actor_learning_rate,
                                                                                  jnp.float32))

    def behaviour(self, params: NDPGParams, obs: jax.Array, key: jax.Array):
        return ndpg_explore(params.actor, obs, key, self.config.node_noise, self.config.exploration_noise)

    def policy(self, actor: tuple, obs: jax.Array) -> jax.Array:
        return ndpg_policy(actor, obs)

    def extras_example(self) -> tuple:
        return tuple(jnp.zeros((d,), jnp.float32) for d in self.network.net_arch)

    def update_batch(self, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams):
        c = self.config
        return ndpg_update(c.ndpg_critic, self.tx_critic, self.tx_actor, learner, batch, hyper, c.train_frequency)


def make_agent(config, env, spec) -> NDPGAgent:
    """The agent factory of the ``neuron-local`` row of :data:`purejax_ad.algos.ALGO_SPECS`."""
    return NDPGAgent(config, env)
