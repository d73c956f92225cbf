"""Parameter files (purejax_ad/trained.py): one file per real run of a wave, named by sweep config and seed,
read back in one call into the config, env, agent and exactly the parameters written."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import purejax_ad
from purejax_ad.algos import make_agent
from purejax_ad.config import Config, ConfigError
from purejax_ad.envs import make_config_env
from purejax_ad.evaluation import evaluate
from purejax_ad.hyperparams import Hyperparams
from purejax_ad.outputs import config_record
from purejax_ad.trained import params_file, read_params_file, write_params

#: 2 sweep configs x 2 seeds = 4 runs.
CONFIG = Config(num_seeds=2, net_arch=(8, 8), num_heads=2, context_size=3, sweep=(("learning_rate", (1e-3, 3e-3)),))


def wave_params(num_runs: int):
    """Distinct initial parameters per run, stacked ``[num_runs]`` as a wave holds them."""
    agent = make_agent(CONFIG, make_config_env(CONFIG))
    init = jax.jit(lambda k: agent.init_learner(k, Hyperparams.from_values(CONFIG)).params)
    per_run = [init(jax.random.key(r)) for r in range(num_runs)]
    return per_run, jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *per_run)


def test_load_params_returns_the_written_run_ready_to_evaluate(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config_record(CONFIG)))
    per_run, stacked = wave_params(6)  # a wave of 6: runs 4 and 5 are padding
    written = write_params(tmp_path, CONFIG, stacked, np.arange(6), env_steps=1200, eval_index=2, wave=0,
                           wave_size=6)
    assert sorted(p.name for p in written) == ["config_0_seed_0.msgpack", "config_0_seed_1.msgpack",
                                               "config_1_seed_0.msgpack", "config_1_seed_1.msgpack"]
    trained = purejax_ad.load_params(tmp_path, seed=1, config_index=1)  # run 3
    jax.tree.map(np.testing.assert_array_equal, trained.params, per_run[3])
    assert any(not np.array_equal(a, b)  # the runs differ
               for a, b in zip(jax.tree.leaves(per_run[3]), jax.tree.leaves(per_run[2])))
    assert trained.record["hyper"] == {"learning_rate": 3e-3}
    assert (trained.record["seed"], trained.record["config_index"], trained.record["env_steps"]) == (1, 1, 1200)
    assert trained.config.net_arch == (8, 8) and trained.agent.network.num_layers == 2
    returns = jax.jit(lambda p, k: evaluate(trained.agent, trained.env, p, k, 2, 20))(trained.params, jax.random.key(0))
    assert returns.shape == (2,) and np.all((np.asarray(returns) >= 1) & (np.asarray(returns) <= 20))
    # a file alone (copied elsewhere) is enough: it holds its config
    alone = tmp_path / "elsewhere.msgpack"
    alone.write_bytes(params_file(tmp_path, 0, 1, num_configs=2).read_bytes())
    jax.tree.map(np.testing.assert_array_equal, purejax_ad.load_params(alone).params, per_run[2])
    assert read_params_file(alone)["config"]["sweep"] == [["learning_rate", [1e-3, 3e-3]]]


def test_missing_or_foreign_files_are_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config_record(CONFIG)))
    with pytest.raises(ConfigError, match="none: the run has not finished"):
        purejax_ad.load_params(tmp_path)
    other = tmp_path / "other.msgpack"
    other.write_bytes(b"\x81\xa1a\x01")  # msgpack {"a": 1}
    with pytest.raises(ConfigError, match="not a purejax_ad parameter file"):
        purejax_ad.load_params(other)
