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


def _help_text(*args: str) -> str:
    """``python -m purejax_ad.train ARGS --help`` as an 80-column terminal shows it (one column of boxes)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "purejax_ad.train", *args, "--help"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_gives_every_flag_a_line_of_help_in_sections():
    """Item 5 of issue 17: every flag listed with help of its own, --resume / --dry-run too, the documented usage line."""
    import dataclasses
    import re

    from purejax_ad.config import HELP_SECTIONS, Config

    text = _help_text()
    assert text.startswith("usage: python -m purejax_ad.train")
    assert "DeepMind Control" in text and "dqn" in text and "picks the defaults" in text
    rows = [line.strip("│ ").rstrip("│ ") for line in text.splitlines() if line.startswith("│")]
    entries, current = {}, None
    for row in rows:  # a flag's entry: its row and the wrapped rows under it
        m = re.match(r"(--[a-z0-9-]+)", row)
        if m:
            current = m.group(1)
            entries[current] = row[len(current):]
        elif current is not None:
            entries[current] += " " + row
    flags = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(Config) if f.name != "sweep"}
    assert flags | {"--resume", "--dry-run"} <= set(entries), sorted(flags - set(entries))
    for flag in flags | {"--resume", "--dry-run"}:
        words = re.sub(r"\(default: [^)]*\)", "", entries[flag]).split()[1:]  # drop the metavar
        assert len(words) >= 3 and not any(set(w) <= set("-─") for w in words), (flag, entries[flag])
    # Sections: every flag in exactly one, and each section shown as a titled box.
    listed = [name for names in HELP_SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(Config) if f.name != "sweep")
    for title in HELP_SECTIONS:
        assert f"─ {title.replace('_', '-')} options ─" in text


def test_help_imports_no_jax():
    """``--help`` stays fast: parsing it imports nothing that imports JAX."""
    import subprocess
    import sys

    code = ("import sys\nfrom purejax_ad.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('jax' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stderr[-2000:]


def test_sigint_during_compilation_exits_3_in_one_line(tmp_path):
    """Item 6 of issue 17: Ctrl-C while XLA compiles stops with exit 3, one line, nothing written."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "purejax_ad.train", *TINY, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PUREJAX_AD_COMPILE_TIMES": str(tmp_path / "compile_times.json")})
    line = proc.stderr.readline()
    while line and not line.startswith("compiling "):
        line = proc.stderr.readline()
    assert "first time on this device: no estimate" in line, line
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert lines == ["stopped (SIGINT) during compilation; nothing was trained or written"], lines
    assert not out.exists()
