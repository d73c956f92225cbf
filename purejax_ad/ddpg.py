"""Continuous-action actor-critic updates: backprop DDPG (the yardstick) and neuron-local DDPG (spec §13).

Pure functions of NamedTuple states; :mod:`purejax_ad.actor_critic` wraps them in the training program.
``B`` is the batch, ``m`` the action dimension, ``d_l`` the width of layer ``l``; actions are in ``[-1, 1]``.

**ddpg** (Lillicrap et al. 2016): MLP actor (``net_arch`` hidden, ReLU, tanh output), MLP critic ``Q(s, a)``
(``net_arch`` hidden, ReLU, obs and action concatenated at the input), target copies of both. Critic loss
``mean ½(Q(s, a) − y)²`` with ``y = r + γ(1 − terminated) Q'(s', μ'(s'))``; then the actor loss
``−mean Q(s, μ(s))`` with the freshly updated critic. Each network has its own optax chain
(global-norm clip over that network -> Adam -> learning rate). Exploration: Gaussian action noise.

**ndpg** (neuron-local DDPG, Guss et al., spec §13.2 / §13.4). A feed-forward actor whose every unit
(hidden and output) is tanh: layer ``l`` has incoming weights ``K_l [d_l, d_{l-1} + 1]`` (bias last) and
computes ``x_l = tanh(K_l v_l)`` with ``v_l = [x_{l-1}; 1]``, ``x_0`` the observation; the output layer's
units are the env actions. Every neuron ``n`` is an agent with state ``v`` (its layer's input vector,
bias 1 included) and action ``a^n`` (its own output), and its own critic (per layer, rows = neurons):

* ``"linear"`` (the draft, §13.2): ``Q^n(v, a) = θ_vᵀ v + θ_a a`` (``theta_v [d, in+1]``, ``theta_a [d]``);
  ``∇_a Q^n = θ_a`` is constant.
* ``"compatible"`` (§13.4): ``Q^n(v, a) = (a − μ^n(v)) σ'(K^n v) vᵀ w_n + u_nᵀ v`` (``w, u [d, in+1]``),
  ``μ^n(v) = tanh(K^n v)`` with the *current* weights (they are features, not critic parameters);
  ``∇_a Q^n = σ'(K^n v) vᵀ w_n``. The target critic uses the target actor, so at ``a' = μ'^n(v')`` its
  advantage term vanishes and ``Q'^n(v', a') = u'_nᵀ v'``.

Both use the per-neuron TD error ``D = r + γ(1 − terminated) Q'^n(v', a'^n) − Q^n(v, a)``, the critic
semi-gradient of ``½D²`` and the local deterministic policy gradient
``ΔK^n ∝ mean_i ∇_a Q^n(v_i, μ^n(v_i)) σ'(K^n v_i) v_i``. No gradient crosses a neuron: the rules are
written out (:func:`ndpg_local_grads`), and a neuron's update reads only its own weights and critic and
the forward activity of the layers below it (never any downstream weight).

Design choices of ndpg (the draft leaves them open, spec §13.4):

* **Exploration / what is stored.** While collecting, every hidden neuron is perturbed on its
  pre-activation, ``x = tanh(K v + ξ)``, ``ξ ~ N(0, node_noise²)`` (node perturbation), and the output
  units add DDPG action noise, ``a = clip(tanh(K v) + ε, −1, 1)``, ``ε ~ N(0, exploration_noise²)``. A
  transition stores the obs, the env action taken, reward, terminated, next obs, and the hidden noise
  vectors ``ξ_l [d_l]`` (``Transition.noise``).
* **Reconstruction at update time.** ``v`` and ``a`` are recomputed with the *current* network from the
  stored obs and the stored noise: hidden ``a^n = tanh(K^n v + ξ^n)`` and the next layer sees these
  perturbed outputs, as during collection; an output neuron's taken ``a^n`` is the stored env action
  (the action the reward actually followed). So a neuron's perturbation is replayed exactly, while its
  input ``v`` follows the current upstream weights (no stale per-neuron tuples). ``v', a'`` come from a
  noise-free pass of the *target* actor on the next obs.
* **Timing.** Feed-forward: the whole net propagates within one env step, so ``v_{t+1}`` is the neuron's
  input at the next env step (not the draft's one-layer-per-step ``a_{t+1} = σ(K v_t)``).
* **Actor gradient point.** ``∇_a Q^n`` and ``σ'`` are evaluated at the neuron's noise-free output
  ``μ^n(v) = tanh(K^n v)`` for the replayed ``v`` (which carries the upstream perturbations).
* **Optimiser.** Plain SGD, exactly the rules of §13.2: ``θ_n += η_Q mean_i D_i ∂Q^n/∂θ_n`` and
  ``K^n += η_A mean_i ∇_a Q^n σ'(K^n v_i) v_i``, with ``η_Q = hyper.learning_rate`` (traced, sweepable)
  and ``η_A = actor_learning_rate``; critic and actor steps are computed from the same pre-update
  parameters. No gradient clipping (``max_grad_norm`` and the Adam settings do not apply to ndpg): a
  global clip would couple neurons. (Elementwise Adam was tried too: on a one-step bandit probe it
  overshot and on Pendulum its ~lr-per-step limit kept the linear critics far from the return scale.)

Targets (both algos): ``target <- tau*online + (1-tau)*target`` after every
``max(1, target_update_interval // train_frequency)``-th update, as :func:`purejax_ad.ad_dqn.update`
(DDPG's soft update: ``target_update_interval = train_frequency``, small ``tau``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejax_ad.ad_dqn import Hyperparams


class Transition(NamedTuple):
    """One stored env step (leading ``[B]`` when batched).

    Attributes:
      obs: ``[obs_size]`` float32. action: ``[m]`` float32 env action taken, in ``[-1, 1]``.
      reward: ``[]`` float32. terminated: ``[]`` bool (no bootstrap). next_obs: ``[obs_size]`` float32.
      noise: ndpg: per hidden layer ``[d_l]`` float32 pre-activation perturbations ξ_l; ddpg: ``()``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    next_obs: jax.Array
    noise: tuple = ()


class ACLearnerState(NamedTuple):
    """Learning state of one seed. ``params`` / ``target_params`` are 1-tuples (the whole agent is one
    "layer" for the host loop). ``opt_state``: ``(critic_state, actor_state)``. ``num_updates``: ``[]`` int32."""

    params: tuple
    target_params: tuple
    opt_state: tuple
    num_updates: jax.Array


@optax.inject_hyperparams
def local_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """ndpg's optimiser: plain SGD, ``param -= learning_rate * grad`` (the draft's rules, spec §13.2)."""
    return optax.sgd(learning_rate)


def soft_update(params, target, hyper: Hyperparams, num_updates: jax.Array, train_frequency: int):
    """Periodic soft target update (see the module docstring)."""
    period = jnp.maximum(1, hyper.target_update_interval // train_frequency)
    return optax.periodic_update(optax.incremental_update(params, target, hyper.tau), target, num_updates, period)


# ------------------------------------------------------------------------------------------------
# ddpg
# ------------------------------------------------------------------------------------------------


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


def ddpg_target(target: DDPGParams, batch: Transition, gamma: jax.Array) -> jax.Array:
    """``y = r + γ(1 − terminated) Q'(s', μ'(s'))``: ``[B]``."""
    q_next = ddpg_q(target.critic, batch.next_obs, ddpg_actor(target.actor, batch.next_obs))
    return batch.reward + gamma * (1.0 - batch.terminated.astype(jnp.float32)) * q_next


def ddpg_critic_loss(critic: tuple, batch: Transition, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(mean ½(Q(s, a) − y)², mean Q(s, a))`` over the batch."""
    q = ddpg_q(critic, batch.obs, batch.action)
    return 0.5 * jnp.mean(jnp.square(q - y)), jnp.mean(q)


def ddpg_update(tx_critic, tx_actor, learner: ACLearnerState, batch: Transition, hyper: Hyperparams,
                train_frequency: int) -> tuple[ACLearnerState, dict]:
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
    num_updates = learner.num_updates + 1
    target = soft_update(params, target, hyper, num_updates, train_frequency)
    return ACLearnerState((params,), (target,), (opt_c, opt_a), num_updates), {"td_loss": loss[None],
                                                                             "q_mean": q_mean[None]}


# ------------------------------------------------------------------------------------------------
# ndpg (spec §13)
# ------------------------------------------------------------------------------------------------


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


def ndpg_local_grads(kind: str, params: NDPGParams, target: NDPGParams, batch: Transition, gamma: jax.Array):
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


def ndpg_update(kind: str, tx_critic, tx_actor, learner: ACLearnerState, batch: Transition, hyper: Hyperparams,
                train_frequency: int) -> tuple[ACLearnerState, dict]:
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
    num_updates = learner.num_updates + 1
    target = soft_update(params, target, hyper, num_updates, train_frequency)
    return ACLearnerState((params,), (target,), (opt_c, opt_a), num_updates), {"td_loss": loss[None],
                                                                             "q_mean": q_mean[None]}
