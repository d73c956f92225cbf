"""How long compiling took before on this device: the estimate in the CLI's "compiling ..." line.

A small JSON history, ``$XDG_CACHE_HOME/purejax_ad/compile_times.json`` (default ``~/.cache/purejax_ad/``;
``$PUREJAX_AD_COMPILE_TIMES`` names another file),
keeps one record per compile: the device (``"<device kind> x<device count>"``,
:func:`purejax_ad.summary.device_description`), the program (:func:`program_key`: algorithm, env, cell,
layers, context source) and the seconds it took. The estimate is the median of the newest
:data:`RECENT` records of the same program on the same device, else of any program on the same device;
without either there is none. The history is a convenience: when it cannot be read or written, the line
says "no estimate" and nothing fails. Imports nothing from JAX.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import NamedTuple

#: Records kept in the history (the oldest are dropped).
MAX_RECORDS = 500
#: Newest matching records the estimate is the median of.
RECENT = 5


class Estimate(NamedTuple):
    """``seconds``: median of ``count`` earlier compiles; ``same_program``: of this program (else: of others)."""

    seconds: float
    count: int
    same_program: bool


def history_path() -> Path:
    """``$PUREJAX_AD_COMPILE_TIMES`` if set (the test suite points it at a temporary file, so that its tiny
    programs do not enter a user's history), else ``$XDG_CACHE_HOME/purejax_ad/compile_times.json``
    (``XDG_CACHE_HOME`` defaults to ``~/.cache``)."""
    if os.environ.get("PUREJAX_AD_COMPILE_TIMES"):
        return Path(os.environ["PUREJAX_AD_COMPILE_TIMES"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "purejax_ad" / "compile_times.json"


def program_key(config) -> str:
    """What decides the compile time, roughly: ``"<algo> <env> <cell> <layers>L <context_source>"`` of a
    :class:`purejax_ad.config.Config` (widths and batch sizes change it little: XLA compiles one loop body)."""
    return f"{config.algo} {config.env} {config.network_cell} {len(config.net_arch)}L {config.context_source}"


def load(path: Path | None = None) -> list[dict]:
    """The records of the history at ``path`` (default :func:`history_path`); ``[]`` if it is missing or unreadable."""
    try:
        records = json.loads((path or history_path()).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def estimate(records: list[dict], device: str, program: str) -> Estimate | None:
    """The median seconds of the newest :data:`RECENT` compiles of ``program`` on ``device``, else of any
    program on ``device``; ``None`` without any compile on ``device``."""
    on_device = [r for r in records if r.get("device") == device and isinstance(r.get("seconds"), (int, float))]
    same = [r for r in on_device if r.get("program") == program]
    chosen = same or on_device
    if not chosen:
        return None
    recent = [float(r["seconds"]) for r in chosen[-RECENT:]]
    return Estimate(statistics.median(recent), len(recent), bool(same))


def describe(found: Estimate | None) -> str:
    """The estimate in words, for the "compiling ..." line."""
    if found is None:
        return "first time on this device: no estimate"
    basis = (f"the median of its last {found.count} compile(s) here" if found.same_program
             else f"the median of {found.count} compile(s) of other programs here")
    return f"about {found.seconds:.0f} s on this device, {basis}"


def compiling_line(config, runs: int, device: str, path: Path | None = None) -> str:
    """The line printed before compiling ``runs`` runs of ``config`` (a :class:`purejax_ad.config.Config`) on
    ``device``, with the estimate from the history at ``path`` (default :func:`history_path`)."""
    found = estimate(load(path), device, program_key(config))
    return (f"compiling {config.algo} on {config.env} for {runs} runs on {device} (init, warm-up, first chunk, "
            f"evaluation; {describe(found)})")


def record(device: str, program: str, seconds: float, path: Path | None = None) -> None:
    """Append one compile to the history (the newest :data:`MAX_RECORDS` are kept; written atomically).
    Does nothing when the history cannot be written."""
    path = path or history_path()
    records = load(path) + [{"device": device, "program": program, "seconds": round(float(seconds), 2),
                             "time": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(records[-MAX_RECORDS:], indent=0))
        os.replace(tmp, path)
    except OSError:
        pass
