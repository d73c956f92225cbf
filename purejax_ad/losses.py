"""Per-layer TD targets and losses (docs/algorithm.md §Per-layer loss, quirk Q5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def td_target(
    q_next_online: jax.Array,
    q_next_target: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    gamma: float,
    double_q: bool = True,
) -> jax.Array:
    """Each layer's own (double-)Q target ``r + gamma (1 - d) Q_tg(s', a*)``.

    Args:
      q_next_online: ``[L, batch, A]`` online Q at s' (selects ``a*`` when ``double_q``).
      q_next_target: ``[L, batch, A]`` the same layer's target-network Q at s'.
      reward: ``[batch]``. terminated: ``[batch]`` bool (truncation still bootstraps).

    Returns:
      ``[L, batch]`` targets, under ``stop_gradient``.
    """
    if double_q:
        a_star = jnp.argmax(q_next_online, axis=-1)
        q_next = jnp.take_along_axis(q_next_target, a_star[..., None], axis=-1)[..., 0]
    else:
        q_next = jnp.max(q_next_target, axis=-1)
    y = reward + gamma * (1.0 - terminated.astype(jnp.float32)) * q_next
    return jax.lax.stop_gradient(y)


def td_error_loss(td_error: jax.Array, kind: str) -> jax.Array:
    """Element loss of a TD error: ``"mse"`` is ``e**2`` (no 1/2, the shipped configs);
    ``"huber"`` is optax's Huber with delta 1 (``0.5 e**2`` if ``|e| <= 1`` else ``|e| - 0.5``)."""
    if kind == "mse":
        return jnp.square(td_error)
    if kind == "huber":
        return optax.huber_loss(td_error, delta=1.0)
    raise ValueError(f"unknown td_loss {kind!r}")


#: Element losses of the quantile TD errors (docs/algorithm.md §Quantile outputs, quirk Q4).
QR_LOSSES = ("as_published", "as_published_huber", "quantile_huber")


def quantile_td_target(
    q_next_online: jax.Array,
    q_next_target: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    gamma: float,
    double_q: bool = True,
) -> jax.Array:
    """Each layer's own distributional target ``T_j = r + gamma (1 - d) theta_j(s', a*; target)`` (docs/algorithm.md §Quantile outputs).

    Args:
      q_next_online: ``[L, batch, N, A]`` online quantiles at s'; ``a* = argmax_a mean_n`` (double-Q).
      q_next_target: ``[L, batch, N, A]`` the same layer's target quantiles at s' (``a*`` from their
        mean when not ``double_q``).
      reward: ``[batch]``. terminated: ``[batch]`` bool.

    Returns:
      ``[L, batch, N]`` target samples, under ``stop_gradient``.
    """
    selector = q_next_online if double_q else q_next_target
    a_star = jnp.argmax(jnp.mean(selector, axis=-2), axis=-1)  # [L, B]
    q_next = jnp.take_along_axis(q_next_target, a_star[..., None, None], axis=-1)[..., 0]  # [L, B, N]
    y = reward[:, None] + gamma * (1.0 - terminated.astype(jnp.float32))[:, None] * q_next
    return jax.lax.stop_gradient(y)


def quantile_element_loss(u: jax.Array, kind: str) -> jax.Array:
    """``rho(u)`` of docs/algorithm.md §Quantile outputs: ``as_published`` ``u^2`` (expectile regression, the official code);
    ``as_published_huber`` ``u^2`` if ``|u| <= 1`` else ``|u|`` (the official "Huber"); ``quantile_huber``
    ``0.5 u^2`` if ``|u| <= 1`` else ``|u| - 0.5`` (standard QR-DQN, kappa = 1)."""
    a = jnp.abs(u)
    if kind == "as_published":
        return jnp.square(u)
    if kind == "as_published_huber":
        return jnp.where(a <= 1.0, jnp.square(u), a)
    if kind == "quantile_huber":
        return jnp.where(a <= 1.0, 0.5 * jnp.square(u), a - 0.5)
    raise ValueError(f"unknown qr_loss {kind!r}; valid: {', '.join(QR_LOSSES)}")


def quantile_regression_loss(predicted: jax.Array, target: jax.Array, kind: str) -> jax.Array:
    """The QR-DQN loss of docs/algorithm.md §Quantile outputs, per layer.

    ``u_ij = T_j - theta_i``, ``w_ij = |tau_i - 1{u_ij < 0}|`` with ``tau_i = (i - 0.5) / N``;
    ``loss = mean_b [ mean_j sum_i w_ij rho(u_ij) ]``.

    Args:
      predicted: ``[..., batch, N]`` quantiles ``theta_i(s, a_t)``. target: ``[..., batch, N]`` samples ``T_j``.
      kind: element loss, one of :data:`QR_LOSSES`.

    Returns:
      ``[...]`` (e.g. ``[L]``): the loss of every layer.
    """
    n = predicted.shape[-1]
    tau = (jnp.arange(n, dtype=jnp.float32) + 0.5) / n
    u = target[..., None, :] - predicted[..., :, None]  # [..., B, N_pred (i), N_target (j)]
    weight = jnp.abs(tau[:, None] - (u < 0).astype(jnp.float32))
    per_sample = jnp.mean(jnp.sum(weight * quantile_element_loss(u, kind), axis=-2), axis=-1)  # [..., B]
    return jnp.mean(per_sample, axis=-1)
