"""Config checks: one message per ``Literal`` field holding a value outside its choices, per value out of its
range (seeds, optimiser values, intervals in whole updates, sweep lists), and the checks of an output directory."""

from __future__ import annotations

import math
import re

import pytest

from purejax_ad.checks import check, choice_fields, validate
from purejax_ad.config import Config, ConfigError
from purejax_ad.presets import PRESETS, preset_config
from purejax_ad.rundir import output_dir_problems, restart_note


def test_every_literal_field_is_a_choice_and_only_those():
    fields = choice_fields()
    assert fields["td_loss"] == ("mse", "huber") and fields["on_nonfinite"] == ("stop", "drop-seed")
    assert "seeds_per_wave" not in fields and "algo" not in fields  # a union with int; a table row


@pytest.mark.parametrize("name, value, message", [
    ("td_loss", "x", "td_loss must be 'mse' or 'huber', got 'x'"),
    ("cell", "gru", "cell must be 'auto', 'attention', 'mlp' or 'arq', got 'gru'"),
    ("ndpg_critic", "naf", "ndpg_critic must be 'linear', 'compatible' or 'quadratic', got 'naf'"),
    ("ndpg_optimizer", "rmsprop", "ndpg_optimizer must be 'sgd' or 'adam', got 'rmsprop'"),
    ("matmul_dtype", "float16", "matmul_dtype must be 'float32' or 'bfloat16', got 'float16'"),
])
def test_a_value_outside_the_choices_is_one_problem(name, value, message):
    assert validate(Config(**{name: value})) == [message]
    with pytest.raises(ConfigError, match="invalid config: " + message.replace("(", r"\(")):
        check(Config(**{name: value}))


def test_the_defaults_are_valid():
    assert validate(Config()) == []


@pytest.mark.parametrize("overrides, message", [
    (dict(seed=99999999999999999999), "seed must be in [0, 4294967295]"),
    (dict(seed=2**32), "seed must be in [0, 4294967295]"),  # jax.random.key(2**32) is seed 0's key
    (dict(seed=-1), "seed must be in [0, 4294967295]"),
    (dict(algo="ndpg", env="Pendulum-v1", ndpg_value_features=64),
     "ndpg_value_features (the shared value critic) needs --ndpg-critic quadratic, got 'linear'"),
    (dict(ndpg_value_features=-1), "ndpg_value_features must be >= 0, got -1"),
    (dict(algo="ndpg", env="Pendulum-v1", ndpg_n_step=0), "ndpg_n_step must be >= 1, got 0"),
    (dict(algo="ndpg", env="Pendulum-v1", ndpg_n_step=64, num_envs=4, train_frequency=4, learning_starts=200),
     "ndpg_n_step (64) needs a window of that many steps per env in the replay buffer and in the warm-up"),
    (dict(algo="ndpg", env="Pendulum-v1", lr_schedule="linear"),
     "lr_schedule 'linear' is not implemented for ndpg (pass --lr-schedule constant; preset none sets 'linear')"),
    (dict(adam_b1=1.5), "adam_b1 must be in [0, 1), got 1.5"),
    (dict(adam_b1=1.0), "adam_b1 must be in [0, 1), got 1.0"),
    (dict(adam_b2=-1.0), "adam_b2 must be in [0, 1), got -1.0"),
    (dict(adam_eps=-1.0), "adam_eps must be a finite number > 0, got -1.0"),
    (dict(adam_eps=0.0), "adam_eps must be a finite number > 0, got 0.0"),
    (dict(learning_rate=math.nan), "learning_rate must be a finite number > 0, got nan"),
    (dict(learning_rate=math.inf), "learning_rate must be a finite number > 0, got inf"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number > 0, got 0.0"),
    (dict(max_grad_norm=math.nan), "max_grad_norm must be > 0, got nan"),
    (dict(recurrent_weight=math.nan), "recurrent_weight must be a finite number, got nan"),
    (dict(target_update_interval=6), "target_update_interval (6) must be a multiple of train_frequency (4): a "
                                     "target update follows a whole update; nearest valid: 4 or 8"),
    (dict(target_update_interval=2), "target_update_interval (2) must be a multiple of train_frequency (4): a "
                                     "target update follows a whole update; nearest valid: 4"),
    (dict(log_interval=7), "log_interval (7) must be a multiple of train_frequency (4): a log chunk is a whole "
                           "number of updates; nearest valid: 4 or 8"),
    (dict(sweep=(("target_update_interval", (200.0, 202.0)),)),
     "sweep value {'target_update_interval': 202.0}: target_update_interval (202) must be a multiple of "
     "train_frequency (4)"),
    (dict(sweep=(("adam_b2", (0.99, 1.0)),)), "sweep value {'adam_b2': 1.0}: adam_b2 must be in [0, 1), got 1.0"),
    (dict(sweep=(("learning_rate", (1e-3, 1.00000000001e-3)),)),
     "the sweep list of learning_rate has values that are equal in float32"),
    (dict(algo="ddpg", env="Pendulum-v1", actor_learning_rate=math.inf),
     "actor_learning_rate must be a finite number > 0, got inf"),
    (dict(algo="ddpg", env="Pendulum-v1", exploration_noise=math.nan), "exploration_noise and node_noise must be >= 0"),
])
def test_an_out_of_range_value_is_one_problem(overrides, message):
    """Item by item: each bad value gives exactly one problem, starting with ``message``."""
    (problem,) = validate(Config(**overrides))
    assert problem.startswith(message), problem


@pytest.mark.parametrize("overrides", [
    dict(seed=2**32 - 1), dict(seed=0), dict(adam_b1=0.0, adam_b2=0.0), dict(max_grad_norm=math.inf),
    dict(target_update_interval=4, log_interval=4), dict(sweep=(("target_update_interval", (200.0, 204.0)),)),
    dict(sweep=(("learning_rate", (1e-3, 1.001e-3)),)),
])
def test_values_at_the_edge_of_the_ranges_are_valid(overrides):
    assert validate(Config(**overrides)) == []


def test_every_preset_is_valid():
    for name in PRESETS:
        assert validate(preset_config(name)) == [], name


HEADER = "config,seed,env_steps\n"
#: A run directory's files (name -> text; None: a directory) for the output-directory table.
RUN_DIRS = {
    "computed_nothing": {"config.json": "{}", "metrics.csv": HEADER, "eval.csv": "config,seed\n", "checkpoints": None},
    "rows_no_checkpoint": {"config.json": "{}", "metrics.csv": HEADER + "0,0,800\n",
                           "summary.json": '{"complete": false}'},
    "with_checkpoint": {"config.json": "{}", "metrics.csv": HEADER + "0,0,800\n", "checkpoints": None,
                        "checkpoints/800": None},
    "finished": {"config.json": "{}", "summary.json": '{"complete": true, "final_return_mean": null}'},
    "foreign": {"notes.txt": "mine"},
}


@pytest.mark.parametrize("layout, resume, problem, note", [
    ("computed_nothing", False, None, "holds a run that stopped before computing anything"),
    ("computed_nothing", True, None, "no checkpoint yet; starting it afresh"),
    ("rows_no_checkpoint", False, "holds a run that stopped before its first checkpoint; --resume", None),
    ("rows_no_checkpoint", True, None, "no checkpoint yet; starting it afresh"),
    ("with_checkpoint", False, "holds another run; continue that one with --resume", None),
    ("with_checkpoint", True, None, None),
    ("finished", False, "holds a finished run; choose another --out", None),
    ("finished", True, "the run is already complete", None),
    ("foreign", False, "is not empty; choose another --out", None),
    ("foreign", True, "not a run directory (no config.json)", None),
])
def test_an_existing_output_directory_is_reused_resumed_or_refused(tmp_path, layout, resume, problem, note):
    """A run directory is never refused both for a new run and for ``--resume`` unless it is finished (or not a
    run); the check leaves every file as it was."""
    out = tmp_path / "run"
    out.mkdir()
    for name, text in RUN_DIRS[layout].items():
        (out / name).mkdir() if text is None else (out / name).write_text(text)
    before = {p: p.read_text() if p.is_file() else None for p in out.rglob("*")}
    problems = output_dir_problems(out, resume)
    if problem is None:
        assert problems == [] and check(Config(), out, resume) == Config()
        got = restart_note(out, resume)  # what run() prints before it starts the run afresh (None: no note)
        assert got is None if note is None else note in got, got
    else:
        (line,) = problems
        assert problem in line and str(out) in line, line
    assert {p: p.read_text() if p.is_file() else None for p in out.rglob("*")} == before


@pytest.mark.parametrize("where, message", [
    ("/proc/purejax_ad_test/run", "cannot create output directory /proc/purejax_ad_test/run"),  # refused even as root
    ("file/run", "cannot create output directory {tmp}/file/run: {tmp}/file is not a directory"),
    ("new/nested/run", None),
])
def test_the_output_directory_is_created_once_to_check_it_and_removed(tmp_path, where, message):
    (tmp_path / "file").write_text("x")
    out = tmp_path / where if not where.startswith("/") else where
    with_problem = message is not None
    if with_problem:
        with pytest.raises(ConfigError, match=re.escape(message.format(tmp=tmp_path))):
            check(Config(), out)
    else:
        assert check(Config(), out) == Config()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # whatever the check made is gone
