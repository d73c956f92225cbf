"""End-to-end tests of ``python -m purejax_ad.train``: outputs, schema, learning, bad input."""

from __future__ import annotations

import csv
import json

import pytest

from _helpers import TINY, run_cli


def test_cli_writes_every_output_with_the_schema(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(*TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout
    for name in ("config.json", "metrics.csv", "eval.csv", "learning_curve.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("env", "algo", "preset", "num_seeds", "total_timesteps", "final_return_mean", "final_return_se",
                "final_return_per_seed", "final_eval_per_layer", "compile_s", "train_s", "env_steps_per_s"):
        assert key in summary, key
    assert summary["env"] == "CartPole-v1" and summary["algo"] == "ad-dqn" and summary["num_seeds"] == 2
    assert summary["total_timesteps"] == 1200
    assert len(summary["final_return_per_seed"]) == 2 and len(summary["final_eval_per_layer"]) == 2
    assert summary["env_steps_per_s"] > 0 and summary["compile_s"] > 0
    metrics = list(csv.DictReader((out / "metrics.csv").open()))
    # warm-up 400 steps, then chunks of 400 steps: rows at 800 and 1200 for each of 2 seeds
    assert [(int(r["seed"]), int(r["env_steps"])) for r in metrics] == [(0, 800), (1, 800), (0, 1200), (1, 1200)]
    for col in ("episodic_return", "td_loss_l1", "td_loss_l2", "q_mean_l1", "q_mean_l2", "epsilon"):
        assert col in metrics[0]
    evals = list(csv.DictReader((out / "eval.csv").open()))
    # evaluation at step 0, at 800 (interval) and at the end, for 2 seeds x 2 layer prefixes
    assert sorted({int(r["env_steps"]) for r in evals}) == [0, 800, 1200]
    assert len(evals) == 3 * 2 * 2
    config = json.loads((out / "config.json").read_text())
    assert config["batch_size"] == 16 and config["quirks"]["replay_padding"] == "zero_context"


def test_cli_paper_preset_sets_faithful_quirks(tmp_path):
    out = tmp_path / "paper"
    proc = run_cli("--preset", "paper-minatar", "--env", "Breakout-MinAtar", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "paper-minatar"
    assert config["quirks"] == {"truncation_starts_episode": False, "advance_context_on_random_action": False,
                                "replay_padding": "repeat_first", "shared_init_key": True,
                                "sticky_action_prob": None, "minatar_time_limit": "original", "td_loss": "mse",
                                "qr_loss": "as_published",
                                "fixed_env_reset_key": False}  # Q7 is a DMC quirk (paper-dmc sets it)
    assert config["learning_rate"] == 2.5e-4 and config["train_frequency"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "Pong-v0"], "unknown env id"),
        (["--preset", "nope"], "unknown preset"),
        (["--num-seeds", "0"], "num_seeds must be > 0"),
        (["--context-size", "-1"], "context_size must be >= 0"),
        (["--batch-size", "100000", "--buffer-size", "1000"], "larger than the replay buffer"),
        (["--learning-starts", "10000000"], "learning_starts"),
        (["--num-envs", "3"], "multiple of num_envs"),
        (["--algo", "ppo"], "unknown algo 'ppo'"),
        (["--env", "Pendulum-v1"], "has continuous actions but algo ad-dqn needs discrete actions"),
        (["--keep-checkpoints", "0"], "keep_checkpoints must be >= 1"),
        (["--stop-after-steps", "0"], "stop_after_steps must be > 0"),
        (["--gamma", "1.5"], "gamma must be in [0, 1]"),
        (["--net-arch", "64", "0"], "net_arch needs at least one layer and positive widths"),
        (["--inject-nan", "9", "100"], "inject_nan seed 9 is not among the 4 seeds"),
        (["--resume", "does/not/exist"], "not a run directory"),
        (["--seed", "99999999999999999999"], "seed must be in [0, 4294967295]"),  # was a raw OverflowError
        (["--adam-b2", "-1"], "adam_b2 must be in [0, 1), got -1.0"),
        (["--learning-rate", "nan"], "learning_rate must be a finite number > 0, got nan"),
        (["--log-interval", "7"], "log_interval (7) must be a multiple of train_frequency (4)"),
        (["--target-update-interval", "200,202"], "sweep value {'target_update_interval': 202.0}: "
                                                  "target_update_interval (202) must be a multiple"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line_error(tmp_path, args, message):
    out = tmp_path / "bad"
    proc = run_cli(*args, "--out", str(out), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert not out.exists()


def test_every_problem_is_reported_in_one_line(tmp_path):
    proc = run_cli("--num-seeds", "0", "--context-size", "-1", "--algo", "x", "--out", str(tmp_path / "o"), timeout=120)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    for message in ("num_seeds must be > 0", "context_size must be >= 0", "unknown algo"):
        assert message in line


@pytest.mark.parametrize("case", ["holds_a_run", "under_a_file", "resume_with_preset", "under_proc"])
def test_bad_output_directory_is_refused_and_left_untouched(tmp_path, case):
    existing = tmp_path / "existing"
    (existing / "checkpoints" / "800").mkdir(parents=True)
    (existing / "config.json").write_text("{}")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args, message = {
        "holds_a_run": (["--out", str(existing)], "holds another run; continue that one with --resume"),
        "under_a_file": (["--out", str(blocker / "run")], "is not a directory"),
        "resume_with_preset": (["--resume", str(existing), "--preset", "classic-fast"], "--preset cannot be given"),
        # /proc refuses a new directory even to root (whom os.access lets through): found before compiling
        "under_proc": (["--out", "/proc/purejax_ad_test/run", *TINY], "cannot create output directory /proc/"),
    }[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error:") and message in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (existing / "config.json").read_text() == "{}" and blocker.read_text() == "x"


def test_classic_fast_learns_cartpole(tmp_path):
    """classic-fast, shortened: the moving mean of training returns is far above random (~22)."""
    out = tmp_path / "learn"
    proc = run_cli("--num-seeds", "2", "--total-timesteps", "40000", "--eval-interval", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_return_mean"] > 100, summary
