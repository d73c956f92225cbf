"""Short CLI runs give byte-identical ``metrics.csv`` and ``eval.csv`` to files recorded at earlier commits.

The files in ``tests/data/reference_<commit>/<host>/<name>/`` were written by ``python -m purejax_ad.train
<args> --out DIR`` at that commit, with the arguments of :data:`RUNS`, on the host named by ``<host>``
(``tests/data/README.md``). Float32 rounding depends on the host's CPU, so a run passes when it equals the files
of any recorded host; a host that rounds like none of them runs the commit's code itself
(:func:`train_at_commit`, from this clone's git history) and compares with that.

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
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from purejax_ad.train import main
from _host import numerics_fingerprint

DATA = Path(__file__).parent / "data"
COMMON = ["--num-seeds", "2", "--log-interval", "2000", "--checkpoint-interval", "0"]
#: ``classic-fast`` as it was when these files were recorded (before its tuning, docs/results.md "Tuning
#: classic-fast"): the same values, spelled out, give the same runs.
CLASSIC_FAST = ["--preset", "classic-fast", "--learning-rate", "1e-3", "--lr-schedule", "constant",
                "--target-update-interval", "200", "--epsilon-end", "0.05"]
#: name -> (reference commit, CLI arguments)
RUNS = {
    "cartpole": ("9a9c9aa", [*CLASSIC_FAST, "--total-timesteps", "10000", "--eval-interval", "5000",
                             "--num-eval-episodes", "3", *COMMON]),
    "breakout": ("9a9c9aa", [*CLASSIC_FAST, "--env", "Breakout-MinAtar", "--total-timesteps", "8000",
                             "--eval-interval", "4000", "--num-eval-episodes", "2", "--replay-padding", "repeat_first",
                             "--advance-context-on-random-action", "false", *COMMON]),
    "mountaincar-stored": ("9a9c9aa", [*CLASSIC_FAST, "--env", "MountainCar-v0", "--total-timesteps",
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
_CART = [*CLASSIC_FAST, "--total-timesteps", "10000", "--eval-interval", "5000", "--num-eval-episodes", "3"]
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
CHECKPOINT_ARGS = [*CLASSIC_FAST, "--total-timesteps", "8000", "--buffer-size", "4000", "--eval-interval", "5000",
                   "--num-eval-episodes", "3", "--num-seeds", "2", "--log-interval", "2000",
                   "--checkpoint-interval", "2000"]


#: Columns that may differ in the last bit, per run. In the conv DQN the mean of the batch's Q-values (a
#: logged statistic, not used by learning) is summed in another order by XLA once the observations are
#: unpacked from bits in the same program (a batch mean of 32 values, so within 32 float32 roundings of
#: |Q| <= 1: 1e-6); every loss, return and evaluation stays bit-identical.
LAST_BIT_COLUMNS = {"breakout-dqn": {"q_mean_l1"}}
#: ``metrics.csv`` columns added since the references were recorded (the actor-critic diagnostics): a run may
#: have them after the recorded columns; every recorded column must still be equal, character for character.
ADDED_COLUMNS = ("saturated_l", "action_mean", "action_std", "critic_mc_corr_l")
ROOT = Path(__file__).resolve().parents[1]


def _rows(path):
    return list(csv.DictReader(path.open()))


def _recorded(commit: str, name: str) -> dict[str, Path]:
    """``host-<fingerprint>`` -> the directory of ``name``'s files recorded at ``commit`` on that host
    (``host-unrecorded``: recorded before fingerprints were kept)."""
    return {d.name: d / name for d in sorted((DATA / f"reference_{commit}").iterdir()) if (d / name).is_dir()}


def _difference(out: Path, reference: Path, files, loose=frozenset()) -> str | None:
    """``None`` if ``out``'s ``files`` equal ``reference``'s byte for byte (``loose`` columns to 1e-6; a CSV may
    also have :data:`ADDED_COLUMNS` after the recorded ones, its recorded columns character for character equal),
    else the first difference. A file is a name, or ``(name in out, name in reference)``."""
    for file in files:
        got_name, want_name = file if isinstance(file, tuple) else (file, file)
        if not loose and (out / got_name).read_bytes() == (reference / want_name).read_bytes():
            continue
        if not got_name.endswith(".csv"):
            return f"{got_name} differs"
        got, want = _rows(out / got_name), _rows(reference / want_name)
        added = [c for c in (got[0] if got else {}) if c not in (want[0] if want else {})]
        if not added and not loose:
            return f"{got_name} differs"
        if any(not c.startswith(ADDED_COLUMNS) for c in added):
            return f"{got_name}: unexpected columns {added}"
        got = [{k: v for k, v in row.items() if k not in added} for row in got]
        if len(got) != len(want) or (got and list(got[0]) != list(want[0])):
            return f"{got_name}: other rows or columns"
        for g, w in zip(got, want):
            for column in g:
                same = (np.isclose(float(g[column]), float(w[column]), rtol=1e-6, atol=1e-6) if column in loose
                        else g[column] == w[column])
                if not same:
                    return f"{got_name}: {column} {g[column]} != {w[column]} at {g['env_steps']} (seed {g['seed']})"
    return None


def train_at_commit(commit: str, args: list[str], out: Path, work: Path) -> int:
    """``python -m purejax_ad.train <args> --out <out>`` with the package as it was at ``commit`` (extracted from
    this clone's history by ``git archive`` into ``work``), this interpreter and its packages. Returns the exit
    status (0 or 3).

    Raises:
      LookupError: the commit is not in this clone (a shallow clone).
    """
    source = work / f"src-{commit}"
    if not source.is_dir():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "purejax_ad"],
                                 capture_output=True)
        if archive.returncode != 0:
            raise LookupError(f"commit {commit} is not in this clone: {archive.stderr.decode().strip()}")
        source.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.train", *args, "--out", str(out)], cwd=source,
                          env=dict(os.environ, PYTHONPATH=str(source)), capture_output=True, text=True)
    assert proc.returncode in (0, 3), f"the run at {commit} failed ({proc.returncode}): {proc.stderr[-3000:]}"
    return proc.returncode


def reference_run_here(commit: str, name: str, record, work: Path) -> tuple[Path, str]:
    """``name``'s files made now, on this host, by the code of ``commit`` (``record(work / "recorded")`` runs it),
    and how they were found; the test skips when the commit is not in this clone.

    Files are kept per host (``tests/data/README.md``): XLA rounds float32 by the host's instruction set, and RL
    compounds one different bit into a different run, so only a host's own files can be matched byte for byte.
    The recorded files are a shortcut: a host whose runs match none of them (a new CPU; two CPUs can share a
    :func:`numerics_fingerprint` and still round the AD cells differently) runs the commit's code itself.
    """
    host = f"host-{numerics_fingerprint()}"
    try:
        record(work / "recorded")
    except LookupError as e:
        pytest.skip(f"{name}: this host ({host}) rounds like none of the hosts with files recorded at {commit}, "
                    f"and {e}; record them with python tests/data/record_references.py {commit}")
    return work / "recorded", (f"run just now at {commit} on this host ({host}), whose rounding matches none of "
                               f"the recorded hosts ({', '.join(_recorded(commit, name)) or 'none'})")


@pytest.mark.parametrize("name", list(RUNS))
def test_run_is_byte_identical_to_the_recorded_one(name, tmp_path, capsys):
    commit, args = RUNS[name]
    out = tmp_path / name
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    files, loose = ("metrics.csv", "eval.csv"), LAST_BIT_COLUMNS.get(name, frozenset())
    if any(_difference(out, other, files, loose) is None for other in _recorded(commit, name).values()):
        return  # the files of a host that rounds like this one (possibly this one's own)
    reference, found = reference_run_here(
        commit, name, lambda dest: train_at_commit(commit, args, dest, tmp_path), tmp_path)
    difference = _difference(out, reference, files, loose)
    assert difference is None, f"{name} differs from the run {found}: {difference}"


def test_checkpoint_written_before_the_redesign_resumes_to_the_uninterrupted_run(tmp_path, capsys):
    commit, name = CHECKPOINTED

    def record(dest: Path):
        assert train_at_commit(commit, [*CHECKPOINT_ARGS, "--stop-after-steps", "4000"], dest, tmp_path) == 3
        whole = tmp_path / "uninterrupted"
        train_at_commit(commit, CHECKPOINT_ARGS, whole, tmp_path)
        for file in ("metrics.csv", "eval.csv"):
            shutil.copy(whole / file, dest / f"uninterrupted-{file}")

    def resume(reference: Path, run_dir: Path) -> str | None:
        shutil.copytree(reference, run_dir)
        assert main(["--resume", str(run_dir)]) == 0, capsys.readouterr().err
        return _difference(run_dir, run_dir, [(f, f"uninterrupted-{f}") for f in ("metrics.csv", "eval.csv")])

    if any(resume(reference, tmp_path / f"resumed-{other}") is None
           for other, reference in _recorded(commit, name).items()):
        return  # a recorded host's checkpoint and run, and this host rounds like it
    reference, found = reference_run_here(commit, name, record, tmp_path)
    difference = resume(reference, tmp_path / "resumed")
    assert difference is None, f"the resumed run differs from the uninterrupted one {found}: {difference}"
