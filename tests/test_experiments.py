"""purejax_ad.experiments: the paper's grids as data, their --dry-run listing, and a tiny grid run end to end
(stopped, resumed, skipped when finished, the figure drawn)."""

from __future__ import annotations

import json
import re
import shlex

from purejax_ad import experiments
from purejax_ad.cli import parse_args
from purejax_ad.experiments import GridRun, Method, grid_runs, grids

ABLATIONS = ("no-forward", "no-recurrent", "no-skip", "single-128", "single-256", "single-512", "last-layer")


def test_the_minatar_grid_is_5_games_by_ad_its_7_ablations_and_dqn(tmp_path):
    runs = grid_runs(grids()["minatar"], tmp_path)
    games = ["Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar"]
    presets = ["paper-minatar", *(f"paper-minatar-{a}" for a in ABLATIONS), "minatar-dqn"]
    assert [(r.env, r.method.preset) for r in runs] == [(g, p) for g in games for p in presets]
    assert len({r.out for r in runs}) == 45 and all(r.out.parent == tmp_path for r in runs)
    # Each command is a train command line whose config is the preset on that game with the paper's 10 seeds.
    for run in runs[:9] + runs[-9:]:
        argv = shlex.split(run.command)
        assert argv[:3] == ["python", "-m", "purejax_ad.train"]
        config = parse_args(argv[3:] + ["--dry-run"])[0]
        assert (config.env, config.preset, config.num_seeds, config.out) == (run.env, run.method.preset, 10, str(run.out))


def test_the_dmc_and_classic_grids(tmp_path):
    dmc = grid_runs(grids()["dmc"], tmp_path)
    assert len(dmc) == 5 * 3 and {r.env for r in dmc} == {"dmc/walker-walk", "dmc/walker-run", "dmc/hopper-hop",
                                                           "dmc/cheetah-run", "dmc/reacher-hard"}
    qr = [parse_args([*r.args, "--dry-run"])[0] for r in dmc if r.method.name not in ("paper-dmc", "arq-dmc")]
    assert len(qr) == 5 and all(c.preset == "paper-dmc" and c.num_seeds == 8 for c in qr)  # AD-QRDQN, Fig. 7
    assert "dmc-walker-walk-paper-dmc" in {r.name for r in dmc}  # "/" is not a directory level
    classic = grid_runs(grids()["classic"], tmp_path, only=("CartPole",))
    configs = [parse_args([*r.args, "--dry-run"])[0] for r in classic]
    assert len(classic) == 6 and {c.env for c in configs} == {"CartPole-v1"}
    assert {c.algo: c.preset for c in configs} == {
        "ad-dqn": "classic-fast", "ad-qrdqn": "classic-fast", "arq": "classic-fast", "ad-backprop": "classic-fast",
        "dqn": "classic-dqn", "qrdqn": "classic-dqn"}


def test_only_overrides_and_the_status_of_a_run_directory(tmp_path):
    runs = grid_runs(grids()["minatar"], tmp_path, ("--num-seeds", "2"), only=("Breakout*dqn", "Freeway-MinAtar-paper-minatar-no"))
    assert [r.name for r in runs] == ["Breakout-MinAtar-minatar-dqn", *(f"Freeway-MinAtar-paper-minatar-no-{a}"
                                                                       for a in ("forward", "recurrent", "skip"))]
    assert runs[0].args[-4:] == ("--num-seeds", "2", "--out", str(tmp_path / "Breakout-MinAtar-minatar-dqn"))
    run = GridRun("CartPole-v1", Method("m", "classic-fast"), tmp_path / "r", ())
    assert run.status() == "new"
    run.out.mkdir()
    assert run.status() == "new"  # empty
    (run.out / "config.json").write_text("{}")
    assert run.status() == "stale"  # interrupted before its first checkpoint
    (run.out / "checkpoints" / "800").mkdir(parents=True)
    assert run.status() == "resumable"
    (run.out / "summary.json").write_text(json.dumps({"complete": False, "stop_reason": "nonfinite"}))
    assert run.status() == "nonfinite"
    (run.out / "summary.json").write_text(json.dumps({"complete": True, "stop_reason": None}))
    assert run.status() == "complete"


def test_dry_run_lists_each_run_with_its_command_and_plan(tmp_path, capsys):
    assert experiments.main(["minatar", "--dry-run", "--only", "Breakout", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("minatar: ") and out.count("command: python -m purejax_ad.train") == 9
    assert len(re.findall(r"plan: [\d.]+ MiB state per seed .* x 10 per device", out)) == 9
    assert f"9 runs (9 new); {9 * 10 * 5_000_000 + 10 * 5_000:,} env steps" in out
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_smoke_grid_stops_resumes_skips_finished_runs_and_draws_the_figure(tmp_path, capsys):
    base = ["classic", "--smoke", "--only", "CartPole-v1-dqn", "--only", "CartPole-v1-qrdqn", "--out", str(tmp_path),
            "--", "--net-arch", "8", "8"]
    dqn, qrdqn = tmp_path / "CartPole-v1-dqn", tmp_path / "CartPole-v1-qrdqn"
    assert experiments.main([*base, "--stop-after-steps", "1000"]) == 3  # stopped in the first run
    assert json.loads((dqn / "summary.json").read_text())["stop_reason"] == "stop_after_steps"
    assert not qrdqn.exists()
    capsys.readouterr()
    assert experiments.main(base) == 0  # resumes the first run, runs the second, draws the figure
    out = capsys.readouterr().out
    assert f"+ python -m purejax_ad.train --resume {dqn}" in out
    for run in (dqn, qrdqn):
        summary = json.loads((run / "summary.json").read_text())
        assert summary["complete"] and summary["total_timesteps"] == 2000 and summary["num_seeds"] == 2
    assert json.loads((dqn / "summary.json").read_text())["resumed_at"] == [1000]
    table = (tmp_path / "classic.md").read_text()
    assert (tmp_path / "classic.png").stat().st_size > 10_000
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| CartPole-v1-dqn", "| CartPole-v1-qrdqn"]
    metrics = (dqn / "metrics.csv").read_text()
    assert experiments.main(base) == 0  # everything finished: nothing runs again
    assert capsys.readouterr().out.count("skipped: already finished (complete)") == 2
    assert (dqn / "metrics.csv").read_text() == metrics
    # Other sizes for the same directories: refused before anything runs.
    assert experiments.main([*base, "--total-timesteps", "3000"]) == 2
    assert "holds a run of another config (total_timesteps 2000 -> 3000)" in capsys.readouterr().err
