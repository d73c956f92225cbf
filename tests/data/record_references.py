"""Record the reference runs of ``tests/test_reference_runs.py`` on this host, with the code of an earlier commit.

    python tests/data/record_references.py 8a44826        # every run whose reference commit is 8a44826

For every entry of ``RUNS`` recorded at that commit (and, for the commit of ``CHECKPOINTED``, the stopped job and
its uninterrupted twin) it runs ``python -m purejax_ad.train <args> --out DIR`` with the package as it was at the
commit (``git archive``, so nothing of the working tree's package is used), this interpreter and its installed
packages, and writes the files to ``tests/data/reference_<commit>/host-<fingerprint>/``, where the fingerprint
names this host's float32 rounding (``tests/_host.py``). Files recorded on other hosts stay beside them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _host import numerics_fingerprint  # noqa: E402
from test_reference_runs import CHECKPOINT_ARGS, CHECKPOINTED, DATA, RUNS, train_at_commit  # noqa: E402


def record(commit: str, work: Path) -> Path:
    """Run every reference job of ``commit`` with that commit's code; returns the directory written."""
    target = DATA / f"reference_{commit}" / f"host-{numerics_fingerprint()}"
    names = [name for name, (c, _) in RUNS.items() if c == commit]
    if not names and CHECKPOINTED[0] != commit:
        raise SystemExit(f"no reference run is recorded at {commit}")
    if target.exists():  # two CPUs can share a fingerprint and still round the AD cells differently
        raise SystemExit(f"{target} exists (another host with this fingerprint, or this one): not overwritten; "
                         "compare its files with a run here before replacing them by hand")
    for name in names:
        train_at_commit(commit, RUNS[name][1], work / name, work)
        (target / name).mkdir(parents=True, exist_ok=True)
        for file in ("metrics.csv", "eval.csv"):
            shutil.copy(work / name / file, target / name / file)
        print(f"recorded {name}", flush=True)
    if CHECKPOINTED[0] == commit:
        stopped, whole, dest = work / "checkpoint", work / "uninterrupted", target / CHECKPOINTED[1]
        assert train_at_commit(commit, [*CHECKPOINT_ARGS, "--stop-after-steps", "4000"], stopped, work) == 3
        train_at_commit(commit, CHECKPOINT_ARGS, whole, work)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(stopped / "checkpoints", dest / "checkpoints")
        for file in ("config.json", "metrics.csv", "eval.csv", "summary.json"):
            shutil.copy(stopped / file, dest / file)
        for file in ("metrics.csv", "eval.csv"):
            shutil.copy(whole / file, dest / f"uninterrupted-{file}")
        print(f"recorded {CHECKPOINTED[1]}", flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="a reference commit of RUNS, e.g. 9a9c9aa")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"written to {record(parser.parse_args().commit, Path(tmp))}")


if __name__ == "__main__":
    main()
