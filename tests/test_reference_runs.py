"""Short CLI runs give byte-identical ``metrics.csv`` and ``eval.csv`` to files recorded at earlier commits.

The files in ``tests/data/reference_<commit>/<name>/`` were written by ``python -m purejax_ad.train <args>
--out DIR`` at that commit, with the arguments of :data:`RUNS` (``tests/data/README.md``):

* ``9a9c9aa`` stored both observations of every transition in full; the compact replay buffer must not
  change a single number. These runs cover the replayed context with the faithful padding
  (Breakout-MinAtar, bit-packed planes), truncations with stored contexts (MountainCar-v0), the MinAtar
  conv DQN, and both actor-critic algos (Pendulum-v1, truncated every 200 steps).
* ``8a44826`` is the last commit before the algorithm seam (``docs/architecture.md``); the redesign must
  not change a number either. These runs cover every other algorithm (ad-qrdqn, arq, ad-backprop, dqn,
  qrdqn with the QR-DQN loss, ndpg's compatible critic), a DeepMind Control task (MJX) and a sweep run in
  seed waves. A checkpoint written at that commit must resume to the files of the uninterrupted run.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from purejax_ad.train import main

DATA = Path(__file__).parent / "data"
COMMON = ["--num-seeds", "2", "--log-interval", "2000", "--checkpoint-interval", "0"]
#: name -> (reference commit, CLI arguments)
RUNS = {
    "cartpole": ("9a9c9aa", ["--preset", "classic-fast", "--total-timesteps", "10000", "--eval-interval", "5000",
                             "--num-eval-episodes", "3", *COMMON]),
    "breakout": ("9a9c9aa", ["--preset", "classic-fast", "--env", "Breakout-MinAtar", "--total-timesteps", "8000",
                             "--eval-interval", "4000", "--num-eval-episodes", "2", "--replay-padding", "repeat_first",
                             "--advance-context-on-random-action", "false", *COMMON]),
    "mountaincar-stored": ("9a9c9aa", ["--preset", "classic-fast", "--env", "MountainCar-v0", "--total-timesteps",
                                       "8000", "--eval-interval", "4000", "--num-eval-episodes", "2",
                                       "--context-source", "stored", "--burn-in", "2", *COMMON]),
    "breakout-dqn": ("9a9c9aa", ["--preset", "minatar-dqn", "--total-timesteps", "8000", "--learning-starts", "2000",
                                 "--eval-interval", "4000", "--num-eval-episodes", "2", *COMMON]),
    "pendulum-ddpg": ("9a9c9aa", ["--preset", "ddpg-dmc-fast", "--env", "Pendulum-v1", "--total-timesteps", "6000",
                                  "--learning-starts", "2000", "--eval-interval", "3000", "--num-eval-episodes", "2",
                                  "--batch-size", "64", "--net-arch", "32", "32", *COMMON]),
    "pendulum-ndpg": ("9a9c9aa", ["--preset", "ddpg-dmc-fast", "--algo", "ndpg", "--env", "Pendulum-v1",
                                  "--total-timesteps", "6000", "--learning-starts", "2000", "--eval-interval", "3000",
                                  "--num-eval-episodes", "2", "--batch-size", "64", "--net-arch", "32", "32", *COMMON]),
}
_CART = ["--preset", "classic-fast", "--total-timesteps", "10000", "--eval-interval", "5000", "--num-eval-episodes", "3"]
_CART_DQN = ["--preset", "classic-dqn", "--total-timesteps", "8000", "--learning-starts", "2000", "--eval-interval",
             "4000", "--num-eval-episodes", "3"]
RUNS.update({
    "cartpole-ad-qrdqn": ("8a44826", [*_CART, "--algo", "ad-qrdqn", *COMMON]),
    "cartpole-arq": ("8a44826", [*_CART, "--algo", "arq", *COMMON]),
    "cartpole-ad-backprop": ("8a44826", [*_CART, "--algo", "ad-backprop", *COMMON]),
    "cartpole-dqn": ("8a44826", [*_CART_DQN, *COMMON]),
    "cartpole-qrdqn": ("8a44826", [*_CART_DQN, "--algo", "qrdqn", "--qr-loss", "quantile_huber", *COMMON]),
    "cartpole-sweep-waves": ("8a44826", [*_CART, "--total-timesteps", "6000", "--eval-interval", "3000",
                                         "--learning-rate", "1e-3,3e-3", "--seeds-per-wave", "2", *COMMON]),
    "pendulum-ndpg-compatible": ("8a44826", ["--preset", "ddpg-dmc-fast", "--algo", "ndpg", "--ndpg-critic",
                                             "compatible", "--env", "Pendulum-v1", "--total-timesteps", "6000",
                                             "--learning-starts", "2000", "--eval-interval", "3000",
                                             "--num-eval-episodes", "2", "--batch-size", "64", "--net-arch", "32",
                                             "32", *COMMON]),
    "dmc-cartpole-ad-dqn": ("8a44826", ["--preset", "dmc-fast", "--total-timesteps", "4000", "--learning-starts",
                                        "1000", "--eval-interval", "2000", "--num-eval-episodes", "1",
                                        "--eval-max-steps", "200", *COMMON]),
})
#: The run dir of ``--stop-after-steps 4000`` (exit status 3, checkpoint every 2000 env steps) of this job at
#: 8a44826, with ``uninterrupted-{metrics,eval}.csv`` from the same job run without stopping.
CHECKPOINTED = ("8a44826", "checkpoint")


#: Columns that may differ in the last bit, per run. In the conv DQN the mean of the batch's Q-values (a
#: logged statistic, not used by learning) is summed in another order by XLA once the observations are
#: unpacked from bits in the same program (a batch mean of 32 values, so within 32 float32 roundings of
#: |Q| <= 1: 1e-6); every loss, return and evaluation stays bit-identical.
LAST_BIT_COLUMNS = {"breakout-dqn": {"q_mean_l1"}}


def _rows(path):
    return list(csv.DictReader(path.open()))


@pytest.mark.parametrize("name", list(RUNS))
def test_run_is_byte_identical_to_the_recorded_one(name, tmp_path, capsys):
    commit, args = RUNS[name]
    reference = DATA / f"reference_{commit}" / name
    out = tmp_path / name
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    loose = LAST_BIT_COLUMNS.get(name, set())
    for file in ("metrics.csv", "eval.csv"):
        if not loose:
            got, want = (out / file).read_bytes(), (reference / file).read_bytes()
            assert got == want, f"{name}/{file} differs from the run recorded at {commit}"
            continue
        got, want = _rows(out / file), _rows(reference / file)
        assert len(got) == len(want) and got[0].keys() == want[0].keys()
        for g, w in zip(got, want):
            for column in g:
                if column in loose:
                    np.testing.assert_allclose(float(g[column]), float(w[column]), rtol=1e-6, atol=1e-6, err_msg=column)
                else:
                    assert g[column] == w[column], (file, column, g, w)


def test_checkpoint_written_before_the_redesign_resumes_to_the_uninterrupted_run(tmp_path, capsys):
    commit, name = CHECKPOINTED
    run_dir = tmp_path / name
    shutil.copytree(DATA / f"reference_{commit}" / name, run_dir)
    assert main(["--resume", str(run_dir)]) == 0, capsys.readouterr().err
    for file in ("metrics.csv", "eval.csv"):
        want = (run_dir / f"uninterrupted-{file}").read_bytes()
        assert (run_dir / file).read_bytes() == want, f"resumed {file} differs from the uninterrupted run at {commit}"
