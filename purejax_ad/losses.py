"""Per-layer TD targets and losses (spec §5, quirk Q5)."""

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
