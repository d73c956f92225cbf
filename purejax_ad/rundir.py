"""Checks of a run's output directory on disk, made before anything is compiled.

Used by :func:`purejax_ad.checks.check` (``python -m purejax_ad.train``) and :func:`purejax_ad.sac.validate`.
A new run needs a usable directory: :func:`output_dir_problems` creates it (and its missing parents) and a
file in it, then removes what it made, so a path the process cannot write (``/proc/x`` even as root, a
read-only file system, a file as a parent) fails here, in one line, instead of after compilation.

Reuse of a directory (``docs/running.md`` §Output directories): a directory holding another run is refused,
except one whose run computed nothing (no checkpoint, no summary, no CSV row: it failed before its first
chunk), which a new run may reuse. ``--resume`` of a run without a checkpoint starts it afresh with its
stored config (:func:`restart_note`); a finished run is never overwritten.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

#: What a run writes into its directory before its first chunk (``checkpoints/`` stays empty until the first
#: checkpoint); a directory holding only these, with no CSV row, can be reused by a new run.
START_FILES = frozenset({"config.json", "config.json.tmp", "metrics.csv", "eval.csv", "checkpoints"})
#: Name prefix of the probe file (another process's probe may be seen for a moment: it does not count).
PROBE_PREFIX = ".purejax_ad-probe-"


def _entries(out: Path) -> set[str]:
    """Names in the directory ``out``, without probe files."""
    return {p.name for p in out.iterdir() if not p.name.startswith(PROBE_PREFIX)}


def _summary_says_complete(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return False


def has_checkpoint(out: str | os.PathLike) -> bool:
    """``out/checkpoints/`` holds a checkpoint (a directory named by its env step)."""
    ckpts = Path(out) / "checkpoints"
    return ckpts.is_dir() and any(p.name.isdigit() and p.is_dir() for p in ckpts.iterdir())


def _has_rows(path: Path) -> bool:
    """The CSV file ``path`` holds at least one row below its header."""
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            return next(reader, None) is not None
    except OSError:
        return False


def computed_nothing(out: str | os.PathLike) -> bool:
    """``out`` holds a run that stopped before computing anything: only the files of :data:`START_FILES`,
    no checkpoint, no ``summary.json`` and no row in ``metrics.csv`` or ``eval.csv``."""
    out = Path(out)
    return ((out / "config.json").is_file() and _entries(out) <= START_FILES
            and not has_checkpoint(out) and not any(_has_rows(out / n) for n in ("metrics.csv", "eval.csv")))


def _held_run_problem(out: Path) -> str:
    if _summary_says_complete(out / "summary.json"):
        return f"output directory {out} holds a finished run; choose another --out"
    if has_checkpoint(out):
        return (f"output directory {out} holds another run; continue that one with --resume {out}, "
                "or choose another --out")
    return (f"output directory {out} holds a run that stopped before its first checkpoint; --resume {out} starts "
            "it afresh with its own config, or choose another --out")


def _probe(out: Path, attempts: int = 3) -> str | None:
    """Create ``out`` (with its missing parents) and a file in it, then remove what was made; the error, if any.

    The processes of a multi-host run check the same shared directory at once: one may remove a directory
    another is probing, so a vanished directory (``FileNotFoundError``) is tried again, ``attempts`` times.
    """
    for attempt in range(attempts):
        made = []
        try:
            for d in [*reversed(out.parents), out]:
                if not d.exists():
                    try:
                        d.mkdir()
                        made.append(d)
                    except FileExistsError:  # made by another process meanwhile
                        pass
            with tempfile.TemporaryFile(dir=out, prefix=PROBE_PREFIX):
                pass
            return None
        except OSError as e:
            if isinstance(e, FileNotFoundError) and attempt + 1 < attempts:
                continue
            where = f" ({e.filename})" if e.filename and Path(e.filename) != out else ""
            return f"{e.strerror or e}{where}"
        finally:
            for d in reversed(made):
                try:
                    d.rmdir()
                except OSError:  # not empty (another process is using it) or already gone
                    pass
    return None


def _writes_outputs() -> bool:
    """This process writes run outputs: not one of processes 1.. of an initialised multi-process JAX run
    (process 0 writes, into a directory every process sees; it probes it for all of them)."""
    import jax

    return not jax.distributed.is_initialized() or jax.process_index() == 0


def output_dir_problems(out: str | os.PathLike, resume: bool = False) -> list[str]:
    """Problems with an output directory; leaves the file system as it found it.

    A new run needs ``out`` absent, empty, or holding a run that computed nothing (:func:`computed_nothing`),
    and writable: the directory and a file in it are created and removed again (by process 0 only, in an
    initialised multi-process run). ``resume`` needs a run directory (``config.json``) whose run is not
    complete and that is writable; without a checkpoint the run starts afresh (:func:`restart_note`).
    """
    out = Path(out)
    if resume:
        if not (out / "config.json").is_file():
            return [f"--resume {out}: not a run directory (no config.json)"]
        if _summary_says_complete(out / "summary.json"):
            return [f"--resume {out}: the run is already complete"]
    elif out.exists():
        if not out.is_dir():
            return [f"output path {out} exists and is not a directory"]
        if _entries(out) and not computed_nothing(out):
            if (out / "config.json").exists():
                return [_held_run_problem(out)]
            return [f"output directory {out} is not empty; choose another --out"]
    else:
        parent = next(p for p in out.parents if p.exists())
        if not parent.is_dir():
            return [f"cannot create output directory {out}: {parent} is not a directory"]
    error = _probe(out) if _writes_outputs() else None
    if error is not None:
        what = "cannot write into output directory" if out.is_dir() else "cannot create output directory"
        return [f"{what} {out}: {error}"]
    return []


def restart_note(out: str | os.PathLike, resume: bool) -> str | None:
    """The one-line note when a run starts afresh in a directory that already holds one (``None`` otherwise):
    ``--resume`` of a run without a checkpoint, or a new run reusing a run directory that computed nothing."""
    out = Path(out)
    if resume and not has_checkpoint(out):
        return (f"note: --resume {out}: the run has no checkpoint yet; starting it afresh with its stored config "
                "(its rows so far are recomputed)")
    if not resume and out.is_dir() and computed_nothing(out):
        return f"note: {out} holds a run that stopped before computing anything; starting the new run in it"
    return None
