"""Neuron-local DDPG: every neuron of a tanh actor is an agent with its own critic; no gradient crosses
a neuron (``docs/algorithm.md`` §Neuron-local DDPG).

Layer ``l`` has incoming weights ``K_l [d_l, d_{l-1} + 1]`` (bias last) and computes ``x_l = tanh(K_l v_l)``,
``v_l = [x_{l-1}; 1]``, ``x_0`` the observation; the output layer's units are the env actions. Neuron ``n``
has state ``v`` (its layer's input) and action ``a^n`` (its output) and a critic ``Q^n(v, a)``:

* ``"linear"``: ``Q^n(v, a) = θ_vᵀ v + θ_a a``, so ``∇_a Q^n = θ_a`` is constant;
* ``"compatible"``: ``Q^n(v, a) = (a − μ^n(v)) σ'(K^n v) vᵀ w_n + u_nᵀ v`` with ``μ^n(v) = tanh(K^n v)``, so
  ``∇_a Q^n = σ'(K^n v) vᵀ w_n``; at the target actor's ``a' = μ'^n(v')`` the target is ``u'_nᵀ v'``.
* ``"quadratic"`` (not the draft's; ``docs/algorithm.md`` §Curved per-neuron critics): ``Q^n(v, a) = V^n −
  ½ exp(ρ_n) e²``, ``e = (a − μ^n(v)) / σ`` (``σ``: the layer's behaviour noise), ``V^n = u_nᵀ v`` or a shared
  value critic on random features whose TD error is broadcast; the weights ``K^n`` take the regression's own
  semi-gradient step through ``μ^n``, so the neuron stops where its fitted curve peaks.

All use the per-neuron TD error ``D = r + γ(1 − terminated) Q'^n(v', a'^n) − Q^n(v, a)``, the critic
semi-gradient of ``½D²`` and (linear, compatible) the local deterministic policy gradient ``ΔK^n ∝ mean_i ∇_a Q^n
σ'(K^n v_i) v_i``, written out in :func:`ndpg_layer_grads` and applied by plain SGD (or elementwise Adam).
Behaviour: hidden pre-activations are perturbed, ``tanh(K v + ξ)``, ``ξ ~ N(0, node_noise²)`` (stored with the
transition and replayed), and the outputs get DDPG action noise. ``B`` is the batch, ``d_l`` the width of layer ``l``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejax_ad.actor_critic import ActorCriticAgent, finish_update
from purejax_ad.ddpg import init_mlp
from purejax_ad.hyperparams import Hyperparams
from purejax_ad.replay import TransitionBatch, Window
from purejax_ad.state import Acting, LearnerState


@optax.inject_hyperparams
def local_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Plain SGD, ``param -= learning_rate * grad``: a global clip or Adam would couple the neurons."""
    return optax.sgd(learning_rate)


@optax.inject_hyperparams
def local_adam(learning_rate: float) -> optax.GradientTransformation:
    """Elementwise Adam without a global clip: each weight's step reads only its own gradient history, so it
    stays neuron-local."""
    return optax.adam(learning_rate)


class NDPGParams(NamedTuple):
    """``actor``: per layer ``K_l [d_l, in_l + 1]`` (bias last). ``critic``: per layer a dict of
    ``[d_l, in_l + 1]`` / ``[d_l]`` arrays, rows = neurons (``theta_v``, ``theta_a``; ``w``, ``u``; or ``u``,
    ``rho``), then, with a shared value critic, ``{"value": w [F]}``."""

    actor: tuple
    critic: tuple


def with_bias(x: jax.Array) -> jax.Array:
    """``[..., n] -> [..., n + 1]``, a trailing 1."""
    return jnp.concatenate([x, jnp.ones((*x.shape[:-1], 1), x.dtype)], axis=-1)


def ndpg_init(key: jax.Array, obs_size: int, action_dim: int, net_arch: tuple[int, ...],
              critic: str = "linear", value_features: int = 0) -> NDPGParams:
    """Actor: uniform ``±1/sqrt(fan_in)`` (output layer ``±3e-3``); critics: zeros.

    ``value_features > 0`` (``"quadratic"`` only): the neurons share one value critic ``V(s) = wᵀφ(s)`` over that
    many fixed random features (:func:`value_features`), the last entry of ``critic`` (``{"value": w}``), in
    place of each neuron's own ``uᵀv``.
    """
    sizes = (obs_size, *net_arch, action_dim)
    layers = init_mlp(key, sizes)
    actor = tuple(jnp.concatenate([w.T, b[:, None]], axis=1) for w, b in layers)
    critics = []
    for k in actor:
        if critic == "linear":
            critics.append({"theta_v": jnp.zeros_like(k), "theta_a": jnp.zeros(k.shape[:1])})
        elif critic == "compatible":
            critics.append({"w": jnp.zeros_like(k), "u": jnp.zeros_like(k)})
        elif critic == "quadratic":
            own_value = {} if value_features else {"u": jnp.zeros_like(k)}
            critics.append({**own_value, "rho": jnp.zeros(k.shape[:1])})
        else:
            raise ValueError(f"ndpg_critic must be 'linear', 'compatible' or 'quadratic', got {critic!r}")
    if value_features:
        if critic != "quadratic":
            raise ValueError(f"ndpg_value_features needs ndpg_critic='quadratic', got {critic!r}")
        critics.append({"value": jnp.zeros((value_features,))})
    return NDPGParams(actor, tuple(critics))


def value_basis(obs_size: int, num_features: int) -> tuple[jax.Array, jax.Array]:
    """The fixed random basis of :func:`value_features`: ``W [obs_size, F] ~ N(0, 1)``, ``b [F] ~ U[0, 2π)``,
    drawn from one fixed key (the same basis in every run)."""
    k_w, k_b = jax.random.split(jax.random.key(0x5EED))
    return (jax.random.normal(k_w, (obs_size, num_features)),
            jax.random.uniform(k_b, (num_features,), maxval=2 * jnp.pi))


def value_features(obs: jax.Array, num_features: int) -> jax.Array:
    """Random Fourier features ``φ(s) = sqrt(2/F) cos(s W + b)`` (:func:`value_basis`): ``[..., obs_size] ->
    [..., F]``."""
    w, b = value_basis(obs.shape[-1], num_features)
    return jnp.sqrt(2.0 / num_features) * jnp.cos(obs @ w + b)


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
                     reward, discount, noise_scale: float = 1.0, shared_value=None):
    """The local rules of one layer's neurons, written out (descent directions, means over the batch).

    Args:
      k: ``[d, in+1]`` weights. critic / target_critic: this layer's critics.
      v: ``[B, in+1]`` replayed inputs. a: ``[B, d]`` taken outputs. z: ``[B, d]`` ``v Kᵀ``.
      v_next / a_next: ``[B, in+1]`` / ``[B, d]`` target-actor inputs and outputs on the next obs.
      reward: ``[B]``. discount: ``[B]`` ``γ(1 − terminated)``.
      noise_scale: ``σ``, the behaviour noise of this layer's outputs (``"quadratic"`` measures ``a − μ`` in it).
      shared_value: ``(V(s) [B], V'(s') [B])`` of the shared value critic, used by ``"quadratic"`` in place of
        each neuron's ``uᵀv`` / ``u'ᵀv'`` (``None``: their own).

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
    elif kind == "compatible":
        g = v @ critic["w"].T  # vᵀ w_n
        q = (a - mu) * s * g + v @ critic["u"].T
        q_next = v_next @ target_critic["u"].T  # a' = μ'(v'): the advantage term is 0
        dq_da = s * g
    else:  # quadratic: Q = uᵀv − ½ exp(ρ) e², e = (a − μ(v)) / σ (σ = 0: no perturbation, e = 0)
        c = jnp.exp(critic["rho"])
        sigma = noise_scale if noise_scale > 0 else 1.0
        e = (a - mu) / sigma
        if shared_value is None:
            value, value_next = v @ critic["u"].T, v_next @ target_critic["u"].T
        else:
            value, value_next = shared_value[0][:, None], shared_value[1][:, None]
        q = value - 0.5 * c * e**2
        q_next = value_next  # a' = μ'(v'): the advantage term is 0
    d = reward[:, None] + discount[:, None] * q_next - q
    if kind == "linear":
        grads = {"theta_v": -(d.T @ v) / n, "theta_a": -jnp.sum(d * a, axis=0) / n}
    elif kind == "compatible":
        grads = {"w": -((d * (a - mu) * s).T @ v) / n, "u": -(d.T @ v) / n}
    else:
        grads = {"rho": jnp.sum(0.5 * d * c * e**2, axis=0) / n}
        if shared_value is None:
            grads["u"] = -(d.T @ v) / n
        # The regression's own step on μ: ∂Q/∂K = exp(ρ) e / σ · σ'(K v) v, descent on ½D².
        return grads, -((d * c * e / sigma * s).T @ v) / n, d, q
    actor_grad = -((dq_da * s).T @ v) / n
    return grads, actor_grad, d, q


def ndpg_local_grads(kind: str, params: NDPGParams, target: NDPGParams, batch: TransitionBatch, gamma: jax.Array,
                     noise_scales: tuple[float, ...] | None = None):
    """Every neuron's local critic and actor gradients on ``batch`` (no backpropagation).

    Args:
      noise_scales: per layer ``σ_l`` (hidden: ``node_noise``, output: ``exploration_noise``); ``"quadratic"`` only.

    Returns:
      ``(NDPGParams of gradients, td_loss [], q_mean [])``: the losses are means over neurons of
      ``mean_i ½ D²`` and of ``mean_i Q^n(v_i, a_i)``.
    """
    v, a, z = ndpg_forward(params.actor, batch.obs, batch.noise, batch.action)
    v_next, a_next, _ = ndpg_forward(target.actor, batch.next_obs)
    discount = gamma * (1.0 - batch.terminated.astype(jnp.float32))
    critic_g, actor_g, d_all, q_all = [], [], [], []
    scales = noise_scales or (1.0,) * len(params.actor)
    shared = None
    if len(params.critic) > len(params.actor):  # the shared value critic: one linear neuron on fixed features
        w, w_target = params.critic[-1]["value"], target.critic[-1]["value"]
        phi = value_features(batch.obs, w.shape[0])
        shared = (phi @ w, value_features(batch.next_obs, w.shape[0]) @ w_target)
        delta = batch.reward + discount * shared[1] - shared[0]  # the broadcast TD error
    for l in range(len(params.actor)):
        cg, ag, d, q = ndpg_layer_grads(kind, params.actor[l], params.critic[l], target.critic[l], v[l], a[l],
                                        z[l], v_next[l], a_next[l], batch.reward, discount, scales[l], shared)
        critic_g.append(cg), actor_g.append(ag), d_all.append(d), q_all.append(q)
    if shared is not None:
        critic_g.append({"value": -(delta @ phi) / batch.obs.shape[0]})
    d = jnp.concatenate(d_all, axis=1)
    q = jnp.concatenate(q_all, axis=1)
    return NDPGParams(tuple(actor_g), tuple(critic_g)), 0.5 * jnp.mean(d**2), jnp.mean(q)


def ndpg_critic_values(kind: str, params: NDPGParams, batch: TransitionBatch,
                       noise_scales: tuple[float, ...] | None = None) -> tuple:
    """Every neuron's ``Q^n(v, a)`` at replayed steps (stored observation, node noise and action), per layer
    ``[B, d_l]``: the ``Q`` of :func:`ndpg_layer_grads` itself (its gradients, unused here, are dropped by XLA)."""
    v, a, z = ndpg_forward(params.actor, batch.obs, batch.noise, batch.action)
    scales = noise_scales or (1.0,) * len(params.actor)
    shared = None
    if len(params.critic) > len(params.actor):
        w = params.critic[-1]["value"]
        value = value_features(batch.obs, w.shape[0]) @ w
        shared = (value, value)
    zeros = jnp.zeros(batch.obs.shape[:1], jnp.float32)  # no target needed: reward and discount 0
    return tuple(ndpg_layer_grads(kind, params.actor[l], params.critic[l], params.critic[l], v[l], a[l], z[l], v[l],
                                  a[l], zeros, zeros, scales[l], shared)[3] for l in range(len(params.actor)))


def n_step_transitions(window: Window, gamma: jax.Array) -> tuple[TransitionBatch, jax.Array]:
    """Replayed windows of ``n`` steps -> their first steps with n-step targets' parts.

    For window ``t .. t+n-1``: ``reward = sum_{k<m} γ^k r_{t+k}`` and the bootstrap ``γ^m V'(s_{t+m})`` with
    ``m = n`` (``s_{t+n}``: the window's ``next_obs``, the true final observation after a truncation at its last
    step), cut at an episode's end inside the window: a termination at step ``k`` includes ``r_{t+k}`` and does
    not bootstrap; a truncation at step ``k < n - 1`` bootstraps at ``s_{t+k}`` with ``γ^k`` and leaves out
    ``r_{t+k}`` (the final observation of that step is not stored in the window; at ``k = 0`` the target is
    ``V'(s_t)`` alone).

    Returns:
      ``(batch, discount [B])``: ``batch`` holds step ``t``'s observation, action and node noise, the partial
      return as ``reward``, ``terminated`` all False and the bootstrap observation as ``next_obs``; the target is
      ``reward + discount * V'(next_obs)`` (``discount = 0`` after a termination).
    """
    n = window.reward.shape[1]
    batch_size = window.reward.shape[0]
    partial = jnp.zeros((batch_size,), jnp.float32)
    stopped = jnp.zeros((batch_size,), bool)
    discount = jnp.zeros((batch_size,), jnp.float32)
    bootstrap_obs = window.next_obs
    for k in range(n):
        scale = gamma**k
        if k < n - 1:  # a truncation inside the window: bootstrap at s_{t+k}
            cut = window.truncated[:, k] & ~stopped
            bootstrap_obs = jnp.where(cut[:, None], window.obs[:, k], bootstrap_obs)
            discount = jnp.where(cut, scale, discount)
            stopped = stopped | cut
        partial = partial + jnp.where(stopped, 0.0, scale * window.reward[:, k])
        ended = window.terminated[:, k] & ~stopped  # no bootstrap; discount stays 0
        stopped = stopped | ended
    discount = jnp.where(stopped, discount, gamma**n)
    batch = TransitionBatch(window.obs[:, 0], window.action[:, 0], partial, jnp.zeros((batch_size,), bool),
                            bootstrap_obs, tuple(x[:, 0] for x in window.extras))
    return batch, discount


def ndpg_update(kind: str, tx_critic, tx_actor, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams,
                train_frequency: int, noise_scales: tuple[float, ...] | None = None,
                discount: jax.Array | None = None) -> tuple[LearnerState, dict]:
    """One simultaneous local step of every neuron's critic and weights, then the target update.

    Args:
      discount: ``[B]`` per-sample bootstrap discounts of n-step targets (:func:`n_step_transitions`); ``None``:
        ``hyper.gamma``, a one-step target.

    Returns ``(learner, {"td_loss": [1], "q_mean": [1]})`` (pre-update, means over all neurons).
    """
    params, target = learner.params[0], learner.target_params[0]
    opt_c, opt_a = learner.opt_state
    gamma = hyper.gamma if discount is None else discount
    grads, loss, q_mean = ndpg_local_grads(kind, params, target, batch, gamma, noise_scales)
    u, opt_c = tx_critic.update(grads.critic, opt_c, params.critic)
    critic = optax.apply_updates(params.critic, u)
    u, opt_a = tx_actor.update(grads.actor, opt_a, params.actor)
    params = NDPGParams(optax.apply_updates(params.actor, u), critic)
    return finish_update(learner, params, (opt_c, opt_a), hyper, train_frequency, loss, q_mean)


class NDPGAgent(ActorCriticAgent):
    """Neuron-local DDPG as a :class:`purejax_ad.state.Agent` (``Config.ndpg_critic``: the per-neuron critic)."""

    def init_params(self, key: jax.Array) -> NDPGParams:
        n = self.network
        return ndpg_init(key, n.obs_size, n.action_dim, n.net_arch, self.config.ndpg_critic,
                         self.config.ndpg_value_features)

    def optimizers(self, hyper: Hyperparams):
        make = local_adam if self.config.ndpg_optimizer == "adam" else local_optimizer
        return make(hyper.learning_rate), make(jnp.asarray(self.config.actor_learning_rate, jnp.float32))

    def behaviour(self, params: NDPGParams, obs: jax.Array, key: jax.Array):
        return ndpg_explore(params.actor, obs, key, self.config.node_noise, self.config.exploration_noise)

    def policy(self, actor: tuple, obs: jax.Array) -> jax.Array:
        return ndpg_policy(actor, obs)

    @property
    def num_tanh_layers(self) -> int:
        return len(self.network.net_arch) + 1

    def tanh_layers(self, actor: tuple, obs: jax.Array) -> tuple:
        return ndpg_forward(actor, obs)[1]

    def act(self, params, actor, key, env_steps, hyper, warmup: bool) -> Acting:
        """As :meth:`ActorCriticAgent.act`, except that the ``"quadratic"`` critics warm up on the behaviour
        policy: uniform actions would lie tens of ``σ`` from ``μ`` and swamp the curvature fit."""
        if self.config.ndpg_critic != "quadratic":
            return super().act(params, actor, key, env_steps, hyper, warmup)
        action, extras = self.behaviour(params[0], actor.obs, key)
        return Acting(action, action, (), extras)

    def extras_example(self) -> tuple:
        return tuple(jnp.zeros((d,), jnp.float32) for d in self.network.net_arch)

    @property
    def noise_scales(self) -> tuple[float, ...]:
        """``σ_l`` per layer: ``node_noise`` for the hidden layers, ``exploration_noise`` for the output."""
        return (self.config.node_noise,) * len(self.network.net_arch) + (self.config.exploration_noise,)

    @property
    def num_critic_layers(self) -> int:
        return len(self.network.net_arch) + 1

    def critic_values(self, params: NDPGParams, batch: TransitionBatch) -> tuple:
        return ndpg_critic_values(self.config.ndpg_critic, params, batch, self.noise_scales)

    @property
    def sequence_length(self) -> int:
        """Steps per replayed window: ``ndpg_n_step``."""
        return self.config.ndpg_n_step

    def update(self, learner: LearnerState, window: Window, hyper: Hyperparams) -> tuple[LearnerState, dict]:
        if self.config.ndpg_n_step == 1:
            return super().update(learner, window, hyper)
        batch, discount = n_step_transitions(window, hyper.gamma)
        c = self.config
        return ndpg_update(c.ndpg_critic, self.tx_critic, self.tx_actor, learner, batch, hyper, c.train_frequency,
                           self.noise_scales, discount)

    def update_batch(self, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams):
        c = self.config
        return ndpg_update(c.ndpg_critic, self.tx_critic, self.tx_actor, learner, batch, hyper, c.train_frequency,
                           self.noise_scales)


def make_agent(config, env, spec) -> NDPGAgent:
    """The agent factory of the ``neuron-local`` row of :data:`purejax_ad.algos.ALGO_SPECS`."""
    return NDPGAgent(config, env)
