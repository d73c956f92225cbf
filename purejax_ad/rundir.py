"""Checks of a run's output directory on disk, made before anything is compiled or written.

Used by :func:`purejax_ad.checks.check` (``python -m purejax_ad.train``) and :func:`purejax_ad.sac.validate`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _summary_says_complete(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


def output_dir_problems(out: str | os.PathLike, resume: bool = False) -> list[str]:
    """Problems with an output directory, found without writing anything.

    A new run needs ``out`` absent or empty and creatable (its nearest existing ancestor a writable
    directory); ``resume`` needs a run directory with ``config.json`` and a checkpoint.
    """
    out = Path(out)
    if resume:
        if not (out / "config.json").is_file():
            return [f"--resume {out}: not a run directory (no config.json)"]
        if _summary_says_complete(out / "summary.json"):
            return [f"--resume {out}: the run is already complete"]
        if not (out / "checkpoints").is_dir() or not any(p.name.isdigit() for p in (out / "checkpoints").iterdir()):
            return [f"--resume {out}: the run has no checkpoint to resume from"]
        return []
    if out.exists():
        if not out.is_dir():
            return [f"output path {out} exists and is not a directory"]
        if any(out.iterdir()):
            held = " (it holds another run; continue that one with --resume)" if (out / "config.json").exists() else ""
            return [f"output directory {out} is not empty{held}; choose another --out"]
        return [] if os.access(out, os.W_OK) else [f"output directory {out} is not writable"]
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return [f"cannot create output directory {out}: {parent} is not a directory"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"cannot create output directory {out}: {parent} is not writable"]
    return []
