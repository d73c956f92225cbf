"""Hyperparameter sweeps as one compiled program: CLI lists, validation, traced once, outputs per config."""

from __future__ import annotations

import csv
import dataclasses
import json
import re

import numpy as np
import pytest

from purejax_ad import q_learning
from purejax_ad.checks import check, validate
from purejax_ad.config import Config, ConfigError
from purejax_ad.run import run, run_hyperparams
from purejax_ad.train import parse_args, split_sweeps


def test_split_sweeps_takes_lists_out_of_the_arguments():
    args, sweep = split_sweeps(["--learning-rate", "1e-4,2e-4", "--gamma=0.9,0.99", "--num-seeds", "2",
                                "--net-arch", "8", "8"])
    assert args == ["--learning-rate=1e-4", "--gamma=0.9", "--num-seeds", "2", "--net-arch", "8", "8"]
    assert sweep == (("learning_rate", (1e-4, 2e-4)), ("gamma", (0.9, 0.99)))


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "32,64"], "batch_size cannot be swept"),
    (["--learning-rate", "1e-4,fast"], "must be a number"),
    (["--gamma", "0.9,1.5"], "sweep value {'gamma': 1.5}: gamma must be in [0, 1]"),
    (["--learning-rate", "1e-4,1e-4"], "repeats a value"),
    (["--target-update-interval", "100,150.5"], "whole env steps"),
    # the program floored 202 to 200 (50 updates): two identical configs
    (["--target-update-interval", "200,202"], "target_update_interval (202) must be a multiple of train_frequency"),
    (["--learning-rate", "1e-3,1.00000000001e-3"], "equal in float32"),
    (["--adam-eps", "1e-8,-1"], "sweep value {'adam_eps': -1.0}: adam_eps must be a finite number > 0"),
])
def test_bad_sweep_lists_are_rejected_before_compiling(args, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_args([*args, "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


def test_sweep_configs_and_per_run_values():
    config = Config(num_seeds=2, sweep=(("learning_rate", (1e-4, 1e-3)), ("gamma", (0.9, 0.95, 0.99))))
    assert validate(config) == []
    assert config.num_configs == 6
    assert config.sweep_configs[:4] == [{"learning_rate": 1e-4, "gamma": 0.9}, {"learning_rate": 1e-4, "gamma": 0.95},
                                        {"learning_rate": 1e-4, "gamma": 0.99}, {"learning_rate": 1e-3, "gamma": 0.9}]
    hyper = run_hyperparams(config, 14)  # 12 runs + 2 padding runs (config 0)
    lr = np.repeat([1e-4] * 3 + [1e-3] * 3, 2).tolist() + [1e-4, 1e-4]
    gamma = np.repeat([0.9, 0.95, 0.99] * 2, 2).tolist() + [0.9, 0.9]
    np.testing.assert_allclose(hyper.learning_rate, lr, rtol=1e-6)
    np.testing.assert_allclose(hyper.gamma, gamma, rtol=1e-6)
    np.testing.assert_allclose(hyper.max_grad_norm, config.max_grad_norm)  # not swept: the config's value
    unknown = dataclasses.replace(config, sweep=(("batch_size", (8.0, 16.0)),))
    with pytest.raises(ConfigError, match="batch_size cannot be swept"):
        check(unknown)


def test_sweep_of_3_learning_rates_x_4_seeds_is_one_program(tmp_path, monkeypatch):
    traces = 0
    original = q_learning.make_update

    def counting_make_update(*args, **kwargs):
        update = original(*args, **kwargs)

        def counting_update(*a, **k):
            nonlocal traces
            traces += 1  # Python runs only while JAX traces
            return update(*a, **k)
        return counting_update

    monkeypatch.setattr(q_learning, "make_update", counting_make_update)
    lrs = (1e-4, 1e-3, 1e-2)
    config = Config(num_seeds=4, total_timesteps=1200, learning_starts=400, log_interval=400, eval_interval=1200,
                    batch_size=16, net_arch=(8, 8), num_heads=2, context_size=3, num_eval_episodes=2,
                    eval_max_steps=50, checkpoint_interval=0, sweep=(("learning_rate", lrs),), out=str(tmp_path / "s"))
    summary = run(config, progress=False)
    assert traces == 1  # 12 runs, one compiled update
    assert summary["num_configs"] == 3 and summary["sweep"] == {"learning_rate": list(lrs)}
    assert [c["learning_rate"] for c in summary["configs"]] == list(lrs)
    assert all(len(c["final_return_per_seed"]) == 4 for c in summary["configs"])
    assert summary["final_return_mean"] is None  # a sweep has no single final return: see "configs"

    metrics = list(csv.DictReader((tmp_path / "s" / "metrics.csv").open()))
    pairs = [(int(r["config"]), int(r["seed"])) for r in metrics if r["env_steps"] == "800"]
    assert pairs == [(c, s) for c in range(3) for s in range(4)]
    # The configs share their seeds' keys: before any update (evaluation at step 0) they are identical ...
    evals = list(csv.DictReader((tmp_path / "s" / "eval.csv").open()))
    at0 = {(int(r["config"]), int(r["seed"]), r["layers"]): r["mean_return"] for r in evals if r["env_steps"] == "0"}
    assert all(at0[(c, s, l)] == at0[(0, s, l)] for (c, s, l) in at0)
    # ... and the learning rate is what separates them afterwards: the loss curves differ per config.
    last = {(int(r["config"]), int(r["seed"])): float(r["q_mean_l1"]) for r in metrics if r["env_steps"] == "1200"}
    for s in range(4):
        assert len({last[(c, s)] for c in range(3)}) == 3
    assert json.loads((tmp_path / "s" / "config.json").read_text())["sweep"] == [["learning_rate", list(lrs)]]
