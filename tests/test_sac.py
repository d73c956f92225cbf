"""The brax SAC baseline (``purejax_ad.sac``): a real end-to-end CLI run on ``dmc/cartpole-balance`` whose outputs
``purejax_ad.compare`` reads, the seed loop / interruption bookkeeping with brax's trainer faked, and bad input
rejected before anything is loaded or compiled."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from purejax_ad import compare, dmc, sac  # noqa: E402

METRIC_HEADER = ["config", "seed", "env_steps", "episodic_return", "num_episodes", "epsilon", "td_loss_l1",
                 "q_mean_l1"]  # RunWriter's header for one layer
EVAL_HEADER = ["config", "seed", "env_steps", "layers", "mean_return"]

# Tiny everything: one seed (brax compiles every program again for each seed; the seed loop is tested below with
# brax faked, and by hand with real seeds), 8 envs, 50-step episodes, (16, 16) networks, no prefill (a zero-length
# prefill loop compiles to nothing), 2 evaluations (step 0 and the end).
TINY = ["--env", "dmc/cartpole-balance", "--num-seeds", "1", "--total-timesteps", "800", "--num-envs", "8",
        "--num-eval-envs", "4", "--batch-size", "32", "--min-replay-size", "0", "--grad-updates-per-step", "1",
        "--hidden-sizes", "16", "16", "--num-evals", "2", "--episode-length", "50"]


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_cli_end_to_end_outputs_compare_can_read(tmp_path):
    out = tmp_path / "run"
    # Compile time dominates on CPU (~1 min of this test's ~70 s): XLA's cheapest optimisation level.
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                         " --xla_llvm_disable_expensive_passes=true").strip()}
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.sac", *TINY, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.json", "summary.json", "metrics.csv", "eval.csv", "brax_metrics.jsonl", "learning_curve.png"):
        assert (out / name).is_file(), name

    header, rows = read_csv(out / "metrics.csv")
    assert header == METRIC_HEADER
    assert [(r["config"], r["seed"]) for r in rows] == [("0", "0"), ("0", "0")]
    steps = [int(r["env_steps"]) for r in rows]
    assert steps[0] == 0 and steps[-1] >= 800
    assert all(math.isfinite(float(r["episodic_return"])) for r in rows)
    assert all(0.0 <= float(r["episodic_return"]) <= 50.0 for r in rows)  # DMC rewards are in [0, 1] per step
    assert all(math.isfinite(float(r["td_loss_l1"])) for r in rows if int(r["env_steps"]) > 0)
    header, evals = read_csv(out / "eval.csv")
    assert header == EVAL_HEADER and len(evals) == len(rows)
    assert all(r["layers"] == "1" and math.isfinite(float(r["mean_return"])) for r in evals)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "sac" and summary["source"] == "brax.training.agents.sac"
    assert summary["env"] == "dmc/cartpole-balance" and summary["num_seeds"] == 1 and summary["complete"] is True
    assert summary["versions"]["brax"] == "0.14.2" and summary["versions"]["playground"] == "0.2.0"
    assert summary["config"]["impl"] == "jax" and summary["episodic_return_source"] == "eval/episode_reward"
    last = [float(rows[-1]["episodic_return"])]
    assert summary["final_return_per_seed"] == pytest.approx(last)
    assert summary["final_return_mean"] == pytest.approx(last[0]) and summary["final_return_se"] == 0.0
    assert summary["final_eval_per_layer"] == pytest.approx(last)

    run = compare.load_run(out)
    (curve,) = compare.curves(run)
    assert run.env == "dmc/cartpole-balance" and run.algo == "sac" and run.complete is True
    np.testing.assert_allclose(curve.final_returns(), last, rtol=1e-6)
    steps, mean, se = curve.learning_curve()
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(se)) and steps[0] == 0
    assert compare.main([str(out), "--out", str(tmp_path / "cmp.png"), "--table", str(tmp_path / "cmp.md")]) == 0
    assert f"| {run.name} | dmc/cartpole-balance | sac |" in (tmp_path / "cmp.md").read_text()


def fake_train(calls, stop_at=None):
    """Stands in for ``brax.training.agents.sac.train.train``: two progress reports per seed, no compiling."""

    def train(*, seed, num_timesteps, progress_fn, **kwargs):
        calls.append({"seed": seed, "num_timesteps": num_timesteps, **kwargs})
        progress_fn(0, {"eval/episode_reward": np.float32(10.0 + seed)})
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        progress_fn(num_timesteps + 8, {"eval/episode_reward": np.float32(100.0 * seed),
                                        "training/critic_loss": np.float32(0.5)})
        return None, None, {}

    return train


def test_seed_loop_bookkeeping_and_interruption(tmp_path, monkeypatch):
    import brax.training.agents.sac.train as brax_sac

    monkeypatch.setattr(dmc, "load_playground_env", lambda env_id: object())
    calls = []
    monkeypatch.setattr(brax_sac, "train", fake_train(calls))
    out = tmp_path / "run"
    assert sac.main(["--env", "CartpoleBalance", "--num-seeds", "3", "--seed", "5", "--total-timesteps", "20000",
                     "--out", str(out)]) == 0
    assert [c["seed"] for c in calls] == [5, 6, 7]  # seed index i trains with --seed + i
    assert calls[0]["wrap_env_fn"].func.__module__ == "mujoco_playground._src.wrapper"
    assert calls[0]["wrap_env_fn"].func.__name__ == "wrap_for_brax_training"
    header, rows = read_csv(out / "metrics.csv")
    assert header == METRIC_HEADER and [(r["seed"], r["env_steps"]) for r in rows] == [
        ("0", "0"), ("0", "20008"), ("1", "0"), ("1", "20008"), ("2", "0"), ("2", "20008")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "dmc/cartpole-balance" and summary["complete"] and summary["stop_reason"] is None
    assert summary["final_return_per_seed"] == [500.0, 600.0, 700.0]
    assert summary["final_return_mean"] == pytest.approx(600.0)
    assert summary["final_return_se"] == pytest.approx(100.0 / np.sqrt(3))
    assert summary["total_timesteps"] == 20008 and summary["requested_total_timesteps"] == 20000

    calls = []
    monkeypatch.setattr(brax_sac, "train", fake_train(calls, stop_at=2))  # Ctrl-C during the second seed
    out = tmp_path / "stopped"
    assert sac.main(["--env", "dmc/cartpole-balance", "--num-seeds", "3", "--total-timesteps", "20000",
                     "--out", str(out)]) == sac.EXIT_STOPPED
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["stop_reason"] == "SIGINT" and summary["seeds_finished"] == 1
    assert summary["final_return_per_seed"] == [0.0, 11.0, None]  # seed 1 stopped after its step-0 evaluation
    _, rows = read_csv(out / "metrics.csv")
    assert len(rows) == 3 and (out / "learning_curve.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--env", "dmc/cartpole-nope"], "is not a DeepMind Control task"),
    (["--env", "CartPole-v1"], "is not a DeepMind Control task"),
    (["--min-replay-size", "8192", "--total-timesteps", "5000"], "leaves no training after the prefill"),
    (["--num-seeds", "0"], "--num-seeds must be >= 1"),
])
def test_bad_input_fails_before_loading_or_compiling(tmp_path, monkeypatch, capsys, args, message):
    def unreachable(*a, **k):
        raise AssertionError("the env was loaded despite bad input")

    monkeypatch.setattr(dmc, "load_playground_env", unreachable)
    out = tmp_path / "run"
    assert sac.main([*args, "--out", str(out)]) == sac.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not out.exists()  # nothing written


def test_non_empty_output_directory_is_refused(tmp_path, capsys):
    (tmp_path / "something").write_text("x")
    assert sac.main(["--out", str(tmp_path)]) == sac.EXIT_BAD_INPUT
    assert "is not empty" in capsys.readouterr().err
