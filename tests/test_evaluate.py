"""python -m purejax_ad.evaluate (purejax_ad/evaluate.py, render.py): a finished run's final parameters, and each
checkpoint, evaluated with the run's own settings and keys give exactly the rows the run wrote to eval.csv;
--render draws the first evaluation episode; bad input is one error line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from purejax_ad.config import Config
from purejax_ad.outputs import config_record

from _helpers import TINY, run_cli

#: Evaluations at 0, 800 and 1200 (the end); checkpoints at 800 and 1200 (the end).
EVAL_RUN = [*TINY, "--checkpoint-interval", "800"]


def evaluate_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "purejax_ad.evaluate", *map(str, args)], capture_output=True,
                          text=True, timeout=900)


def read_csv(path):
    return list(csv.DictReader(path.open()))


def eval_rows_at(run_dir, step: int):
    return [r for r in read_csv(run_dir / "eval.csv") if r["env_steps"] == str(step)]


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "cartpole"
    proc = run_cli(*EVAL_RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_final_parameters_reproduce_the_runs_final_evaluation(cartpole):
    proc = evaluate_cli(cartpole)
    assert proc.returncode == 0, proc.stderr
    want = eval_rows_at(cartpole, 1200)
    assert len(want) == 2 * 2  # 2 seeds x 2 layer prefixes
    assert read_csv(cartpole / "evaluate-final.csv") == want
    result = json.loads((cartpole / "evaluate-final.json").read_text())
    assert (result["source"], result["episodes"], result["epsilon"], result["max_steps"]) == ("params", 2, 0.05, 50)
    for entry in result["mean_per_layer"]:
        values = [float(r["mean_return"]) for r in want if r["layers"] == str(entry["layers"])]
        assert entry["mean"] == pytest.approx(np.mean(values))
    assert "layers=2" in proc.stdout and f"{float(want[0]['mean_return']):.2f}" in proc.stdout


@pytest.mark.parametrize("step", [800, 1200])
def test_a_checkpoint_reproduces_the_evaluation_made_at_its_step(cartpole, step):
    proc = evaluate_cli(cartpole, "--checkpoint", step)
    assert proc.returncode == 0, proc.stderr
    assert read_csv(cartpole / f"evaluate-{step}.csv") == eval_rows_at(cartpole, step)


def test_render_draws_the_first_evaluation_episode_of_the_full_network(cartpole, tmp_path):
    gif = tmp_path / "cartpole.gif"
    proc = evaluate_cli(cartpole, "--episodes", 1, "--epsilon", 0, "--render", gif, "--render-seed", 1)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((cartpole / "evaluate-final.json").read_text())
    render = result["render"]
    # one evaluation episode per policy: the rendered episode's return is the full network's (layers=2) row
    full = [r for r in result["rows"] if r["seed"] == 1 and r["layers"] == 2][0]
    assert render["return"] == full["mean_return"]
    assert render["frames"] == render["return"]  # CartPole pays 1 per step: one frame per step
    with Image.open(gif) as image:
        assert image.n_frames == render["frames"]
        first = np.asarray(image.convert("RGB"))
        image.seek(image.n_frames - 1)
        last = np.asarray(image.convert("RGB"))
    assert first.shape[2] == 3 and first.std() > 0 and not np.array_equal(first, last)  # the pole moved


def test_bad_input_is_one_error_line_and_writes_nothing(cartpole, tmp_path):
    sac = tmp_path / "sac"
    sac.mkdir()
    (sac / "config.json").write_text(json.dumps({"algo": "sac", "source": "brax.training.agents.sac"}))
    ddpg = tmp_path / "ddpg"
    ddpg.mkdir()
    (ddpg / "config.json").write_text(json.dumps(config_record(Config(env="Pendulum-v1", algo="ddpg"))))
    cases = [((tmp_path / "nothing",), "not a run directory"),
             ((cartpole, "--checkpoint", 7), "no checkpoint 7 (checkpoints: 800, 1200)"),
             ((cartpole, "--episodes", 0), "--episodes must be >= 1"),
             ((cartpole, "--epsilon", 1.5), "--epsilon must be in [0, 1]"),
             ((sac,), "is a run of brax.training.agents.sac"),
             ((ddpg, "--epsilon", 0.1), "epsilon applies to the epsilon-greedy"),
             ((cartpole, "--render", tmp_path / "x.png"), "must end in .gif"),
             ((cartpole, "--render", tmp_path / "x.gif", "--render-seed", 2), "the run has seeds 0..1")]
    before = sorted(p.name for p in cartpole.iterdir())
    for args, message in cases:
        proc = evaluate_cli(*args)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), (args, proc.stderr)
        assert message in lines[0], (args, lines[0])
    assert sorted(p.name for p in cartpole.iterdir()) == before and not (tmp_path / "x.gif").exists()


def test_breakout_minatar_evaluates_and_renders(tmp_path):
    out, gif = tmp_path / "breakout", tmp_path / "breakout.gif"
    proc = run_cli(*TINY, "--env", "Breakout-MinAtar", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = evaluate_cli(out, "--render", gif)
    assert proc.returncode == 0, proc.stderr
    assert read_csv(out / "evaluate-final.csv") == eval_rows_at(out, 1200)
    render = json.loads((out / "evaluate-final.json").read_text())["render"]
    with Image.open(gif) as image:
        assert image.n_frames == render["frames"] >= 1
