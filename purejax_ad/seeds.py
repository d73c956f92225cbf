"""Which runs a wave computes, and each run's PRNG key and hyperparameters.

Runs are the ``num_configs * num_seeds`` ``(sweep config, seed)`` pairs, config-major: run ``r`` is seed
``r % num_seeds`` of sweep config ``r // num_seeds``. Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)``
with its *global* index ``i`` (the same keys for every sweep config: paired comparisons).
"""

from __future__ import annotations

import math

import jax
import numpy as np

from purejax_ad.config import Config
from purejax_ad.hyperparams import Hyperparams


def seed_keys(config: Config, num_seeds: int | None = None) -> jax.Array:
    """``[num_seeds]`` keys, ``fold_in(PRNGKey(seed), i)`` for global seed index ``i``."""
    base = jax.random.key(config.seed)
    n = config.num_seeds if num_seeds is None else num_seeds
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(n))


def run_keys(config: Config, runs) -> jax.Array:
    """Keys of ``runs`` (a count, for runs ``0 .. runs - 1``, or global run indices): run ``r`` is seed
    ``r % num_seeds`` (of sweep config ``r // num_seeds``), key ``fold_in(PRNGKey(seed), r % num_seeds)``."""
    runs = np.arange(runs) if isinstance(runs, int) else np.asarray(runs)
    base = jax.random.key(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(runs % config.num_seeds)


def run_hyperparams(config: Config, runs) -> Hyperparams:
    """Stacked :class:`Hyperparams` of ``runs`` (a count or global run indices): run ``r`` gets sweep config
    ``r // num_seeds`` (padding runs beyond ``num_configs * num_seeds`` get config 0)."""
    runs = range(runs) if isinstance(runs, int) else [int(r) for r in runs]
    combos = config.sweep_configs
    rows = [combos[r // config.num_seeds] if r < len(combos) * config.num_seeds else combos[0]
            for r in runs]
    per_run = [Hyperparams.from_values({k: row.get(k, getattr(config, k)) for k in Hyperparams._fields})
               for row in rows]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *per_run)


def wave_runs(config: Config, wave: int, wave_size: int) -> np.ndarray:
    """Global run indices computed by ``wave`` (``wave_size`` of them; indices past the last run are padding)."""
    return wave * wave_size + np.arange(wave_size)


def num_waves(config: Config, wave_size: int) -> int:
    """Waves needed for the ``num_configs * num_seeds`` runs."""
    return math.ceil(config.num_configs * config.num_seeds / wave_size)


#: Folded into a run's key to start its stream of evaluation keys (evaluation ``i`` folds in ``i`` after it).
EVAL_KEY_SALT = 0x5EED


def eval_keys(keys: jax.Array, index: int) -> jax.Array:
    """Keys of evaluation number ``index`` (0-based, counted inside a seed wave) of the runs whose training keys
    are ``keys [runs]``: ``fold_in(fold_in(key, EVAL_KEY_SALT), index)``, independent of the training stream."""
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, EVAL_KEY_SALT), index))(keys)
