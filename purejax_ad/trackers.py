"""Optional experiment trackers: TensorBoard event files (tensorboardX) and Weights & Biases (wandb).

CSV stays the primary output. A tracker receives, on the host, the very rows that :class:`purejax_ad.outputs.RunWriter`
appends to ``metrics.csv`` and ``eval.csv`` (one call per compiled chunk or evaluation; nothing is added to the
compiled program), and writes them as scalars against **env steps per seed** (docs/running.md, "TensorBoard and
Weights & Biases"):

* ``--tensorboard true``: one TensorBoard run per (sweep config, seed) under ``<out>/tensorboard/seed_<s>/``
  (``config_<c>/seed_<s>/`` with a sweep), plus ``mean/`` (the mean over seeds); tags ``train/<column>`` for
  every metrics.csv column and ``eval/mean_return_layers_<i>`` for the eval.csv rows with ``layers = i``.
* ``--wandb offline|online``: one W&B run per run directory (files under ``<out>/wandb/``), the config as its
  config, keys ``<run>/<tag>`` with the same ``<run>`` and ``<tag>`` names, ``env_steps`` as the x-axis, and
  the summary's final statistics as its summary.

The mean over seeds (``mean``) is logged for a chunk only when its rows hold every seed of the config (not with
seed waves, whose chunks hold one wave's seeds); it averages the finite values.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import secrets
import shutil
from pathlib import Path

import numpy as np

from purejax_ad.config import Config, ConfigError
from purejax_ad.control import EXIT_NONFINITE, EXIT_OK, EXIT_STOPPED

#: ``tracker -> (Python module it needs, the extra that installs it)``.
LIBRARIES = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}
#: The W&B run id of a run directory is kept here, so that ``--resume`` continues the same W&B run.
WANDB_ID_FILE = "purejax_ad_run_id"
#: Summary entries copied into the W&B run summary.
SUMMARY_KEYS = ("complete", "stop_reason", "total_timesteps", "final_return_mean", "final_return_se",
                "env_steps_per_s", "train_s", "compile_s")
_ROW_KEYS = ("config", "seed", "env_steps")
_WRITER_IDS = itertools.count()


def tracker_problems(config: Config) -> list[str]:
    """One problem per tracker that ``config`` turns on but whose library is not installed (checked before
    anything is compiled; :func:`purejax_ad.checks.validate` reports them)."""
    wanted = {"tensorboard": config.tensorboard, "wandb": config.wandb != "off"}
    problems = []
    for tracker, on in wanted.items():
        module, extra = LIBRARIES[tracker]
        if on and importlib.util.find_spec(module) is None:
            flag = "--tensorboard true" if tracker == "tensorboard" else f"--wandb {config.wandb}"
            problems.append(f"{flag} needs the {module} package, which is not installed "
                            f"(pip install 'purejax_ad[{extra}]')")
    return problems


def run_label(config_index: int, seed: int | None, num_configs: int) -> str:
    """``seed_<s>`` (``mean`` for ``seed=None``), under ``config_<c>/`` when there is a sweep."""
    name = "mean" if seed is None else f"seed_{seed}"
    return f"config_{config_index}/{name}" if num_configs > 1 else name


def scalars(rows: list[dict], kind: str, num_seeds: int, num_configs: int = 1) -> dict[str, dict[str, float]]:
    """The scalars of one chunk's (or one evaluation's) rows, ``{run label: {tag: value}}``.

    Args:
      rows: rows as :class:`purejax_ad.outputs.RunWriter` writes them, all at one env step.
      kind: ``"metrics"`` (tags ``train/<column>``) or ``"eval"`` (tags ``eval/mean_return_layers_<i>``).
      num_seeds / num_configs: of the run; the ``mean`` label is added for a config whose rows hold all
        ``num_seeds`` seeds, with the mean over seeds of the finite values (NaN when none is finite).
    """
    per_run: dict[str, dict[str, float]] = {}
    seeds: dict[int, set] = {}
    for row in rows:
        c, s = int(row.get("config", 0)), int(row["seed"])
        if kind == "eval":
            tags = {f"eval/mean_return_layers_{int(row['layers'])}": float(row["mean_return"])}
        else:
            tags = {f"train/{k}": float(v) for k, v in row.items() if k not in _ROW_KEYS and v is not None}
        per_run.setdefault(run_label(c, s, num_configs), {}).update(tags)
        seeds.setdefault(c, set()).add(s)
    for c, present in seeds.items():
        if present != set(range(num_seeds)):
            continue
        runs = [per_run[run_label(c, s, num_configs)] for s in range(num_seeds)]
        mean = {}
        for tag in runs[0]:
            values = np.array([r.get(tag, math.nan) for r in runs], np.float64)
            finite = values[np.isfinite(values)]
            mean[tag] = float(finite.mean()) if finite.size else math.nan
        per_run[run_label(c, None, num_configs)] = mean
    return per_run


def _chunks(rows: list[dict]):
    """Consecutive groups of rows at one env step (a chunk's or an evaluation's rows, in written order)."""
    return [list(group) for _, group in itertools.groupby(rows, key=lambda r: r["env_steps"])]


class Trackers:
    """The trackers of one run directory (on process 0 only). Made by :func:`open_trackers`.

    Args:
      config: the run (``tensorboard``, ``wandb``, ``num_seeds``, ``num_configs``).
      out: the run directory.
      resume: the run continues from a checkpoint: TensorBoard purges the steps it logged after that
        checkpoint (``purge_step``), W&B continues the run whose id is stored in ``<out>/wandb/``.
    """

    def __init__(self, config: Config, out: Path, resume: bool):
        self.config, self.out, self.resume = config, Path(out), resume
        self._tb: dict[str, object] = {}
        self._wandb = None
        self.new = {"tensorboard": config.tensorboard and not (self.out / "tensorboard").exists(),
                    "wandb": config.wandb != "off" and not (self.out / "wandb" / WANDB_ID_FILE).exists()}

    def start(self) -> None:
        """Start the W&B run (TensorBoard writers start on their first scalar).

        Raises:
          purejax_ad.config.ConfigError: wandb could not start a run (e.g. ``online`` without a login); what it
            wrote into a new run directory is removed first.
        """
        if self.config.wandb == "off":
            return
        import wandb

        c = self.config
        wandb_dir = self.out / "wandb"
        created = [p for p in (self.out, wandb_dir) if not p.exists()]
        id_file = wandb_dir / WANDB_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(6)
        from purejax_ad.outputs import config_record

        try:
            wandb_dir.mkdir(parents=True, exist_ok=True)
            self._wandb = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "purejax_ad"), dir=str(self.out), mode=c.wandb,
                id=run_id, resume="allow", name=self.out.resolve().name, config=config_record(c),
                tags=[c.env, c.algo, c.preset], settings=wandb.Settings(console="off", quiet=True))
        except Exception as e:  # wandb raises its own error types (UsageError, CommError, ...)
            for p in reversed(created):
                shutil.rmtree(p, ignore_errors=True)
            raise ConfigError(f"--wandb {c.wandb}: wandb could not start a run: {e}") from None
        id_file.write_text(run_id + "\n")
        self._wandb.define_metric("env_steps")
        self._wandb.define_metric("*", step_metric="env_steps")

    def backfill(self, metric_rows: list[dict], eval_rows: list[dict]) -> None:
        """Log a resumed run's earlier rows to each tracker that this process turned on for the first time
        (a tracker that was on before already holds them)."""
        if not self.resume:
            return
        new = {k for k, v in self.new.items() if v}
        for kind, rows in (("eval", eval_rows), ("metrics", metric_rows)):
            for chunk in _chunks(rows):
                self.log(chunk, kind, only=new)

    def log(self, rows: list[dict], kind: str, only: set | None = None) -> None:
        """Log one chunk's (or one evaluation's) rows (``kind``: ``"metrics"`` or ``"eval"``; ``only``: a
        subset of ``{"tensorboard", "wandb"}``)."""
        if not rows:
            return
        steps = int(rows[0]["env_steps"])
        values = scalars(rows, kind, self.config.num_seeds, self.config.num_configs)
        if self.config.tensorboard and (only is None or "tensorboard" in only):
            for label, tags in values.items():
                writer = self._tb_writer(label, steps)
                for tag, v in tags.items():
                    writer.add_scalar(tag, v, steps)
                writer.flush()
        if self._wandb is not None and (only is None or "wandb" in only):
            self._wandb.log({"env_steps": steps, **{f"{label}/{tag}": v for label, tags in values.items()
                                                      for tag, v in tags.items()}})

    def _tb_writer(self, label: str, steps: int):
        if label not in self._tb:
            from tensorboardX import SummaryWriter

            # A resumed run recomputes the steps after its checkpoint: TensorBoard hides what an earlier
            # process logged from the first step logged here on (this run's first step after the checkpoint).
            purge = steps if self.resume and not self.new["tensorboard"] else None
            # tensorboardX names event files by the second and opens them with "wb": the pid and a counter
            # keep two writers of a run (a run and its resume) from writing over each other's file.
            self._tb[label] = SummaryWriter(str(self.out / "tensorboard" / label), purge_step=purge, flush_secs=30,
                                            filename_suffix=f".{os.getpid()}.{next(_WRITER_IDS)}")
        return self._tb[label]

    def close(self, summary: dict | None = None) -> None:
        """Close the event files and finish the W&B run (its summary from ``summary``; exit code 0 complete,
        3 stopped early, 4 stopped on a non-finite value, as the CLI's)."""
        for writer in self._tb.values():
            writer.close()
        self._tb = {}
        if self._wandb is not None:
            exit_code = EXIT_OK
            if summary is not None:
                self._wandb.summary.update({k: summary[k] for k in SUMMARY_KEYS if k in summary})
                if summary.get("stop_reason"):
                    exit_code = EXIT_NONFINITE if summary["stop_reason"] == "nonfinite" else EXIT_STOPPED
            self._wandb.finish(exit_code=exit_code)
            self._wandb = None


def open_trackers(config: Config, out: str | os.PathLike, resume: bool) -> Trackers | None:
    """The started trackers of ``config`` for run directory ``out`` (``None`` when none is on). Started before
    the run writes any file, so that a tracker that cannot start leaves a new run directory as it was; a
    resumed run then passes the checkpoint's rows to :meth:`Trackers.backfill`.

    Raises:
      purejax_ad.config.ConfigError: see :meth:`Trackers.start`.
    """
    if not config.tensorboard and config.wandb == "off":
        return None
    trackers = Trackers(config, Path(out), resume)
    trackers.start()
    return trackers
