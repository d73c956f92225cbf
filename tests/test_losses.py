"""Per-layer TD targets and element losses (docs/algorithm.md §Per-layer loss, quirk Q5) on hand-worked numbers."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.losses import td_error_loss, td_target

# Two layers, two transitions, three actions. Online and target disagree on the best next action.
Q_NEXT_ONLINE = np.array([
    [[1.0, 5.0, 2.0],    # layer 0, transition 0: online argmax = 1
     [0.0, -1.0, 3.0]],  # layer 0, transition 1: online argmax = 2
    [[9.0, 0.0, 0.0],    # layer 1, transition 0: online argmax = 0
     [0.0, 4.0, 1.0]],   # layer 1, transition 1: online argmax = 1
], np.float32)
Q_NEXT_TARGET = np.array([
    [[10.0, 2.0, 3.0],   # layer 0 target: max 10 (a=0), value at online argmax (a=1) = 2
     [1.0, 7.0, -2.0]],  # max 7 (a=1), value at a=2 = -2
    [[-1.0, 6.0, 0.5],   # layer 1 target: max 6 (a=1), value at a=0 = -1
     [2.0, 3.0, 8.0]],   # max 8 (a=2), value at a=1 = 3
], np.float32)
REWARD = np.array([1.0, -0.5], np.float32)
GAMMA = 0.5


def _target(terminated, double_q):
    return np.asarray(td_target(jnp.asarray(Q_NEXT_ONLINE), jnp.asarray(Q_NEXT_TARGET), jnp.asarray(REWARD),
                                jnp.asarray(np.array(terminated, bool)), GAMMA, double_q))


def test_double_q_target_uses_online_argmax_and_target_value():
    y = _target([False, False], double_q=True)
    expected = np.array([
        [1.0 + 0.5 * 2.0, -0.5 + 0.5 * -2.0],  # layer 0: [2.0, -1.5]
        [1.0 + 0.5 * -1.0, -0.5 + 0.5 * 3.0],  # layer 1: [0.5, 1.0]
    ])
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_plain_target_uses_max_of_target():
    y = _target([False, False], double_q=False)
    expected = np.array([
        [1.0 + 0.5 * 10.0, -0.5 + 0.5 * 7.0],  # [6.0, 3.0]
        [1.0 + 0.5 * 6.0, -0.5 + 0.5 * 8.0],   # [4.0, 3.5]
    ])
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("double_q", [True, False])
def test_terminated_zeroes_bootstrap(double_q):
    y = _target([True, False], double_q=double_q)
    # Transition 0 terminated: target = reward only, for every layer.
    np.testing.assert_allclose(y[:, 0], [1.0, 1.0], rtol=1e-6)
    # Transition 1 still bootstraps.
    expected_1 = [-1.5, 1.0] if double_q else [3.0, 3.5]
    np.testing.assert_allclose(y[:, 1], expected_1, rtol=1e-6)


def test_truncation_is_not_an_input():
    """Only `terminated` stops bootstrapping; a truncated step is passed as not terminated and bootstraps."""
    params = inspect.signature(td_target).parameters
    assert "truncated" not in params and "terminated" in params
    y = _target([False, False], double_q=True)
    assert np.all(y != REWARD[None, :])  # the bootstrap term is present


def test_target_has_no_gradient():
    def f(q_online, q_target):
        y = td_target(q_online, q_target, jnp.asarray(REWARD), jnp.zeros(2, bool), GAMMA, True)
        return jnp.sum(y)

    g_on, g_tg = jax.grad(f, argnums=(0, 1))(jnp.asarray(Q_NEXT_ONLINE), jnp.asarray(Q_NEXT_TARGET))
    assert np.all(np.asarray(g_on) == 0.0) and np.all(np.asarray(g_tg) == 0.0)


ERRORS = np.array([-3.0, -1.0, -0.4, 0.0, 0.5, 1.0, 2.5], np.float32)


def test_mse_is_squared_error_without_half():
    out = np.asarray(td_error_loss(jnp.asarray(ERRORS), "mse"))
    np.testing.assert_allclose(out, [9.0, 1.0, 0.16, 0.0, 0.25, 1.0, 6.25], rtol=1e-6)


def test_huber_delta_one():
    out = np.asarray(td_error_loss(jnp.asarray(ERRORS), "huber"))
    # 0.5 e^2 for |e| <= 1, |e| - 0.5 otherwise.
    np.testing.assert_allclose(out, [2.5, 0.5, 0.08, 0.0, 0.125, 0.5, 2.0], rtol=1e-6)


def test_unknown_td_loss_raises():
    with pytest.raises(ValueError):
        td_error_loss(jnp.asarray(ERRORS), "l1")
