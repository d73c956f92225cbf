"""The pre-flight plan: per-seed state against a hand count of the compact layout, the paper configs' budgets,
refusal of jobs that cannot fit (before compiling or writing), and ``--dry-run``."""

from __future__ import annotations

import math

import jax
import pytest

from purejax_ad.envs import make_config_env
from purejax_ad.plan import GIB, state_bytes
from purejax_ad.presets import preset_config
from purejax_ad.train import main
from purejax_ad.program import make_program as make_train

MINATAR_CELLS = {"Breakout": 10 * 10 * 4, "Asterix": 10 * 10 * 4, "Freeway": 10 * 10 * 7,
                 "SpaceInvaders": 10 * 10 * 6, "Seaquest": 10 * 10 * 10}


def _state_bytes(preset, **overrides):
    config = preset_config(preset, **overrides)
    return config, state_bytes(jax.eval_shape(make_train(config, make_config_env(config)).init, jax.random.key(0)))


@pytest.mark.parametrize("game", list(MINATAR_CELLS))
def test_paper_minatar_state_fits_the_budget_and_matches_the_layout(game):
    """4M transitions per seed: each step holds its observation once, 8 cells a byte, plus a uint8 action,
    a float32 reward and a uint8 of flags (hand count); the whole seed stays within 0.6 GB."""
    config, parts = _state_bytes("paper-minatar", env=f"{game}-MinAtar")
    per_step = math.ceil(MINATAR_CELLS[game] / 8) + 1 + 4 + 1
    assert config.effective_buffer_size == 4_000_000
    steps_bytes = parts["replay: stored steps"]
    assert config.effective_buffer_size * per_step <= steps_bytes <= config.effective_buffer_size * per_step + 64
    assert sum(parts.values()) <= 0.6e9, {k: v / 2**20 for k, v in parts.items()}


def test_paper_dmc_walker_state_fits_the_budget():
    """dmc/walker-walk at paper-dmc: 24 float32 observations once per step, 64 bang-bang actions in a uint8,
    and a side table of final observations for the 1000-step truncations; within 0.5 GB per seed."""
    config, parts = _state_bytes("paper-dmc")
    assert config.env == "dmc/walker-walk"
    assert parts["replay: stored steps"] <= config.effective_buffer_size * (24 * 4 + 1 + 4 + 1) + 64
    lanes_k = config.effective_buffer_size // 1000 + 2
    assert parts["replay: final obs of truncations"] == lanes_k * (24 * 4 + 4)
    assert sum(parts.values()) <= 0.5e9


def test_a_job_that_cannot_fit_is_refused_before_compiling_or_writing(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["--env", "Breakout-MinAtar", "--preset", "paper-minatar", "--num-seeds", "100000000",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert len(err) == 1 and err[0].startswith("error: the run does not fit"), err
    assert "GiB per device" in err[0] and "seeds fit" in err[0]


def test_memory_budget_refusal_names_the_largest_seed_count(tmp_path, capsys):
    config, parts = _state_bytes("classic-fast")
    budget = 2.5 * sum(parts.values()) / GIB  # room for two seeds' states, not four
    code = main(["--num-seeds", "4", "--memory-budget-gb", str(budget), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "at most 2 seeds fit" in err, err
    assert not (tmp_path / "r").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "dry"
    code = main(["--num-seeds", "3", "--total-timesteps", "6000", "--net-arch", "8", "8", "--num-heads", "2",
                 "--dry-run", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and not out.exists()
    for needle in ("state per seed", "replay: stored steps", "training chunk, compiled for 3 runs per device",
                   "temporaries", "GFLOP per env step", "expected wall time", "device memory", "verdict: fits"):
        assert needle in text, needle
