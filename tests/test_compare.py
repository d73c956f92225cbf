"""Tests of ``purejax_ad.compare`` on hand-built run directories (no training)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

os.environ.setdefault("MPLBACKEND", "Agg")

from purejax_ad import compare  # noqa: E402
from purejax_ad.outputs import json_text  # noqa: E402


def se(x):
    x = np.asarray(x, np.float64)
    return np.std(x, ddof=1) / np.sqrt(x.size)


def make_run(path, *, env="CartPole-v1", algo="ad-dqn", returns, evals=None, sweep=None, summary=True,
             config_column=True, extra_config=None, complete=True, layers=2):
    """Write a run dir. ``returns[config][seed]`` is the list of ``episodic_return`` at env steps 100, 200, ...;
    ``evals[config]`` is ``{env_steps: array [seeds, layers]}``."""
    path.mkdir(parents=True)
    config = {"env": env, "algo": algo, "preset": "test", "num_seeds": len(returns[0]), "total_timesteps": 1000,
              **(extra_config or {})}
    if sweep is not None:
        config["sweep"] = sweep
    (path / "config.json").write_text(json.dumps(config))
    cols = (["config"] if config_column else []) + ["seed", "env_steps", "episodic_return", "num_episodes", "epsilon"]
    cols += [f"td_loss_l{i + 1}" for i in range(layers)] + [f"q_mean_l{i + 1}" for i in range(layers)]
    with open(path / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for c, per_seed in enumerate(returns):
            for t in range(len(per_seed[0])):
                for s, rets in enumerate(per_seed):
                    r = "" if rets[t] is None or np.isnan(rets[t]) else rets[t]
                    w.writerow(([c] if config_column else []) + [s, 100 * (t + 1), r, t, 0.1] + [0.5] * 2 * layers)
    with open(path / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow((["config"] if config_column else []) + ["seed", "env_steps", "layers", "mean_return"])
        for c, by_step in enumerate(evals or []):
            for step, arr in by_step.items():
                for s, row in enumerate(np.asarray(arr)):
                    for i, v in enumerate(row):
                        w.writerow(([c] if config_column else []) + [s, step, i + 1, v])
    if summary:
        summ = {"env": env, "algo": algo, "preset": "test", "complete": complete, "final_return_mean": 0.0,
                "final_return_se": 0.0, **(extra_config or {})}
        if sweep is not None:
            field, values = sweep[0]
            summ["configs"] = [{"config": c, field: v, "final_return_mean": 0.0, "final_return_se": 0.0}
                               for c, v in enumerate(values)]
        (path / "summary.json").write_text(json.dumps(summ))
    return path


RNG = np.random.default_rng(0)


def random_returns(seeds=3, steps=4, loc=100.0):
    return [[[None] + list(RNG.normal(loc, 20, steps - 1)) for _ in range(seeds)]]


def test_final_table_matches_numpy_mean_and_se(tmp_path):
    rets = random_returns(seeds=4)
    run = compare.load_run(make_run(tmp_path / "a", returns=rets, complete=False))
    (curve,) = compare.curves(run)
    last = np.array([r[-1] for r in rets[0]])
    np.testing.assert_allclose(curve.final_returns(), last)
    table = compare.final_table([curve])
    row = table.splitlines()[2].split(" | ")
    assert row[6:9] == ["4", "400", f"{last.mean():.2f} ± {se(last):.2f}"]
    assert row[9] == "-" and row[-1] == "no |"  # no eval rows; summary says incomplete
    steps, mean, band = curve.learning_curve()
    np.testing.assert_array_equal(steps, [100, 200, 300, 400])
    assert np.isnan(mean[0])  # empty episodic_return early
    np.testing.assert_allclose(mean[1:], np.mean([r[1:] for r in rets[0]], axis=0))


def test_sweep_with_two_configs_gives_two_curves(tmp_path):
    rets = [random_returns(seeds=3, loc=50.0)[0], random_returns(seeds=3, loc=200.0)[0]]
    sweep = [["learning_rate", [0.0001, 0.001]]]
    run = compare.load_run(make_run(tmp_path / "s", returns=rets, sweep=sweep))
    cs = compare.curves(run)
    assert [c.label for c in cs] == ["ad-dqn [learning_rate=0.0001]", "ad-dqn [learning_rate=0.001]"]
    rows = compare.final_table(cs).splitlines()[2:]
    assert len(rows) == 2
    for c, row, r in zip(cs, rows, rets):
        last = np.array([s[-1] for s in r])
        np.testing.assert_allclose(c.final_returns(), last)
        assert f"| learning_rate={c.swept['learning_rate']} |" in row
        assert f"{last.mean():.2f} ± {se(last):.2f}" in row
    # without summary.json the swept values come from the sweep (dict form) in config order
    run2 = compare.load_run(make_run(tmp_path / "s2", returns=rets, sweep={"learning_rate": [0.0001, 0.001]},
                                     summary=False))
    assert [c.swept for c in compare.curves(run2)] == [{"learning_rate": 0.0001}, {"learning_rate": 0.001}]


def test_old_format_without_config_column_loads(tmp_path):
    rets = random_returns(seeds=2)
    run = compare.load_run(make_run(tmp_path / "old", returns=rets, config_column=False, summary=False,
                                    evals=[{400: [[1.0, 2.0], [3.0, 4.0]]}]))
    assert run.config_ids() == [0] and run.complete is None
    (curve,) = compare.curves(run)
    np.testing.assert_allclose(curve.final_returns(), [r[-1] for r in rets[0]])
    assert curve.last_eval()[0] == 400
    row = compare.final_table([curve]).splitlines()[2]
    assert row.endswith("| ? |") and "| - |" in row  # complete unknown; no sweep


def test_per_layer_bars_use_the_last_eval_step(tmp_path):
    first = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    last = np.array([[10.0, 20.0, 31.0], [12.0, 26.0, 35.0]])
    run = compare.load_run(make_run(tmp_path / "e", returns=random_returns(seeds=2), layers=3,
                                    evals=[{0: first, 400: last, 200: first}]))
    (curve,) = compare.curves(run)
    step, layers, mean, band = curve.last_eval()
    assert step == 400
    np.testing.assert_array_equal(layers, [1, 2, 3])
    np.testing.assert_allclose(mean, last.mean(axis=0))
    np.testing.assert_allclose(band, [se(last[:, i]) for i in range(3)])
    assert f"| {last[:, 2].mean():.2f} ± {se(last[:, 2]):.2f} |" in compare.final_table([curve])


def test_labels(tmp_path):
    qr = compare.load_run(make_run(tmp_path / "q", algo="ad-qrdqn", returns=random_returns(),
                                   extra_config={"qr_loss": "quantile_huber"}))
    dqn = compare.load_run(make_run(tmp_path / "d", algo="dqn", returns=random_returns()))
    assert compare.default_labels([qr, dqn]) == ["ad-qrdqn (quantile_huber)", "dqn"]
    dqn2 = compare.load_run(make_run(tmp_path / "d2", algo="dqn", returns=random_returns()))
    assert compare.default_labels([qr, dqn, dqn2]) == ["ad-qrdqn (quantile_huber)", "d", "d2"]  # dqn repeats
    other_env = compare.load_run(make_run(tmp_path / "d3", env="Breakout-MinAtar", algo="dqn",
                                          returns=random_returns()))
    assert compare.default_labels([dqn, other_env]) == ["dqn", "dqn"]  # same algo on different envs


def _two_env_runs(tmp_path):
    finals = {}
    runs = []
    for env, loc in (("CartPole-v1", 300.0), ("Breakout-MinAtar", 30.0)):
        for algo, n in (("ad-dqn", 5), ("dqn", 4)):
            rets = random_returns(seeds=n, steps=3, loc=loc)
            finals[env, algo] = np.array([r[-1] for r in rets[0]])
            runs.append(make_run(tmp_path / f"{env}-{algo}", env=env, algo=algo, returns=rets,
                                 evals=[{300: RNG.normal(loc, 5, (n, 2))}]))
    runs.append(make_run(tmp_path / "lonely", env="CartPole-v1", algo="arq", returns=random_returns()))
    return runs, finals


def test_iqm_aggregate_matches_hand_computation(tmp_path):
    runs, finals = _two_env_runs(tmp_path)
    cs = [c for p in runs for c in compare.curves(compare.load_run(p))]
    scores, envs, left_out = compare.normalised_scores(cs)
    assert envs == ["Breakout-MinAtar", "CartPole-v1"] and left_out == ["arq"]
    for algo in ("ad-dqn", "dqn"):
        n = min(len(finals[e, algo]) for e in envs)
        expected = np.stack([(finals["Breakout-MinAtar", algo][:n] - 0.4) / (80 - 0.4),
                             (finals["CartPole-v1", algo][:n] - 22) / (500 - 22)], axis=1)
        np.testing.assert_allclose(scores[algo], expected)
    agg = compare.iqm_aggregate(scores, reps=200)
    for algo, (iqm, lo, hi) in agg.items():
        assert iqm == pytest.approx(scipy.stats.trim_mean(scores[algo].ravel(), 0.25))
        assert lo <= iqm <= hi


def test_unknown_env_is_min_max_normalised(tmp_path):
    runs = [make_run(tmp_path / f"{env}-{algo}", env=env, algo=algo, returns=random_returns(seeds=3))
            for env in ("CartPole-v1", "Mystery-v0") for algo in ("ad-dqn", "dqn")]
    cs = [c for p in runs for c in compare.curves(compare.load_run(p))]
    scores, envs, _ = compare.normalised_scores(cs)
    col = np.concatenate([scores[a][:, envs.index("Mystery-v0")] for a in ("ad-dqn", "dqn")])
    assert col.min() == pytest.approx(0.0) and col.max() == pytest.approx(1.0)


def test_iqm_without_rliable_prints_a_note(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rliable", None)
    assert compare.iqm_aggregate({"a": np.ones((3, 2))}) is None
    assert "rliable is not installed" in capsys.readouterr().out


def test_cli_writes_figure_and_table(tmp_path, capsys):
    runs, _ = _two_env_runs(tmp_path)
    fig = tmp_path / "out" / "cmp.png"
    assert compare.main([*map(str, runs), "--out", str(fig), "--title", "t", "--reps", "100"]) == 0
    assert fig.stat().st_size > 0
    table = (tmp_path / "out" / "cmp.md").read_text()
    assert len(table.splitlines()) == 2 + len(runs)
    out = capsys.readouterr().out
    assert table in out and "not in the IQM aggregate" in out and "IQM ad-dqn" in out
    custom = tmp_path / "t.md"
    assert compare.main([str(runs[0]), "--out", str(tmp_path / "one.png"), "--table", str(custom),
                         "--labels", "mine"]) == 0
    assert custom.is_file() and (tmp_path / "one.png").stat().st_size > 0


def test_cli_rejects_bad_input_and_writes_nothing(tmp_path, capsys):
    good = make_run(tmp_path / "good", returns=random_returns())
    fig = tmp_path / "o" / "f.png"
    assert compare.main([str(good), "--out", str(fig), "--labels", "a", "b"]) == 2
    assert "2 labels for 1 run" in capsys.readouterr().err
    (tmp_path / "nometrics").mkdir()
    assert compare.main([str(tmp_path / "nometrics"), "--out", str(fig)]) == 2
    assert "no metrics.csv" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.compare", str(good), str(tmp_path / "missing"),
                           "--out", str(fig)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "run directory does not exist" in proc.stderr and "missing" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("writer", ["strict", "bare_nan"])
def test_a_summary_with_null_or_old_bare_nan_statistics_loads(tmp_path, writer):
    """summary.json writes NaN statistics as null (strict JSON); older files hold a bare NaN. Both read alike."""
    rets = [random_returns(seeds=2, loc=50.0)[0], [[None] * 4, [None] * 4]]  # config 1 never finished an episode
    sweep = [["learning_rate", [0.0001, 0.001]]]
    path = make_run(tmp_path / writer, returns=rets, sweep=sweep)
    summ = json.loads((path / "summary.json").read_text())
    summ["final_return_mean"] = summ["final_return_se"] = float("nan")
    summ["configs"][1].update(final_return_mean=float("nan"), final_return_se=float("nan"),
                              final_return_per_seed=[float("nan")] * 2)
    text = json_text(summ) if writer == "strict" else json.dumps(summ)
    assert ("NaN" in text) == (writer == "bare_nan")
    (path / "summary.json").write_text(text)
    cs = compare.curves(compare.load_run(path))
    assert [c.swept for c in cs] == [{"learning_rate": 0.0001}, {"learning_rate": 0.001}]
    rows = compare.final_table(cs).splitlines()[2:]
    last = np.array([s[-1] for s in rets[0]])
    finals = [row.split(" | ")[8] for row in rows]
    assert finals == [f"{last.mean():.2f} ± {se(last):.2f}", "-"]  # config 1 has no return: "-"
