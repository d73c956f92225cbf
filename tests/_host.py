"""Which float32 rounding this host's XLA:CPU does, as a short fingerprint.

Two CPUs can run the same jitted program on the same inputs and disagree in the last bit: XLA compiles for the
host's instruction set, and its kernels pick vector widths and summation orders from it. One step of
reinforcement learning turns such a bit into a different action a few thousand steps later, so files recorded
byte for byte (``tests/data/reference_<commit>/``) only reproduce on a host that rounds like the one that wrote
them. :func:`numerics_fingerprint` names that rounding: it trains a small network with Adam (matmuls of the
sizes the tests use, tanh, a softmax, mean and variance reductions, square roots, gradients) and hashes the
final parameters' bytes. A rounding difference in any of these operations at any step changes the hash. The
converse does not hold: hosts with one fingerprint can still round a larger program differently (seen: an AMD
EPYC Zen 5 and an Intel Xeon host, ``tests/data/README.md``), so the fingerprint names files, and the reference
tests fall back to running the reference commit's code whenever no recorded files match.
"""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np


def _loss(params, x, y):
    w1, w2, w3 = params
    h = jnp.tanh(x @ w1)
    h = (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)
    attention = jax.nn.softmax(h.reshape(h.shape[0], 4, -1), axis=-1).reshape(h.shape)
    h = jax.nn.relu((h * attention) @ w2)
    return jnp.mean(jnp.square(h @ w3 - y))


@functools.lru_cache(maxsize=1)
def numerics_fingerprint() -> str:
    """12 hex digits naming this host's float32 rounding of the operations our programs use (same on every run
    of one host, with the same jax/jaxlib and XLA flags)."""
    keys = jax.random.split(jax.random.key(20261207), 5)
    x = jax.random.normal(keys[0], (64, 24))
    y = jax.random.normal(keys[1], (64, 6))
    params = (jax.random.normal(keys[2], (24, 96)) / 5.0, jax.random.normal(keys[3], (96, 64)) / 10.0,
              jax.random.normal(keys[4], (64, 6)) / 8.0)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, m, v = carry
            grads = jax.grad(_loss)(params, x, y)
            m = jax.tree.map(lambda a, g: 0.9 * a + 0.1 * g, m, grads)
            v = jax.tree.map(lambda a, g: 0.99 * a + 0.01 * g * g, v, grads)
            params = jax.tree.map(lambda p, a, b: p - 3e-3 * a / (jnp.sqrt(b) + 1e-8), params, m, v)
            return (params, m, v), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        return jax.lax.scan(step, (params, zeros, zeros), None, length=300)[0][0]

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(train(params)):
        digest.update(np.asarray(leaf).tobytes())
    return digest.hexdigest()[:12]


if __name__ == "__main__":
    print(numerics_fingerprint())
