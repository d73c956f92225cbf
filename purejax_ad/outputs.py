"""Run outputs, written as training goes: config.json, metrics.csv, eval.csv, learning_curve.png,
summary.json. Every row is flushed when written, so an interrupted run keeps what it computed."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from purejax_ad.config import Config

QUIRKS = ("truncation_starts_episode", "advance_context_on_random_action", "replay_padding", "shared_init_key",
          "sticky_action_prob", "minatar_time_limit", "td_loss", "qr_loss", "fixed_env_reset_key")


def config_record(config: Config) -> dict:
    """JSON-ready config: every field, the derived loop sizes, and the quirk settings used."""
    record = dataclasses.asdict(config)
    record["derived"] = {
        "effective_total_timesteps": config.effective_total_timesteps,
        "effective_buffer_size": config.effective_buffer_size,
        "updates_per_chunk": config.updates_per_chunk,
        "chunk_env_steps": config.chunk_env_steps,
        "num_chunks": config.num_chunks,
        "target_update_period_updates": config.target_update_period,
    }
    record["quirks"] = {q: getattr(config, q) for q in QUIRKS}
    return record


class RunWriter:
    """Appends metric and evaluation rows to CSV files in ``out_dir`` and flushes each row.

    Args:
      out_dir: created if missing. num_layers: ``L``, for the per-layer columns.
      num_seeds: seeds per sweep config.
      metric_rows / eval_rows: rows already computed (a resumed run), written first.
      enabled: ``False`` writes nothing (processes other than 0 of a multi-host run).
      num_configs: sweep configs; rows are written for the ``num_configs * num_seeds`` runs only
        (padding runs are dropped), run ``r`` as ``config = r // num_seeds``, ``seed = r % num_seeds``.
      trackers: a :class:`purejax_ad.trackers.Trackers` that also receives every metric and evaluation row
        written (not the ``rewrite`` of a multi-wave run), or ``None``.
      diagnostic_names: extra ``metrics.csv`` columns, the agent's ``ChunkMetrics.diagnostics`` in order.
    """

    def __init__(self, out_dir: str | os.PathLike, num_layers: int, num_seeds: int,
                 metric_rows: list[dict] = (), eval_rows: list[dict] = (), enabled: bool = True,
                 num_configs: int = 1, trackers=None, diagnostic_names: tuple[str, ...] = ()):
        self.out_dir = Path(out_dir)
        self.trackers = trackers if enabled else None
        self.enabled = enabled
        self.num_layers = num_layers
        self.num_seeds = num_seeds
        self.num_runs = num_seeds * num_configs
        layer_cols = [f"td_loss_l{i + 1}" for i in range(num_layers)] + [f"q_mean_l{i + 1}" for i in range(num_layers)]
        self.diagnostic_names = tuple(diagnostic_names)
        self.metric_fields = ["config", "seed", "env_steps", "episodic_return", "num_episodes", "epsilon", *layer_cols,
                              *self.diagnostic_names]
        self.eval_fields = ["config", "seed", "env_steps", "layers", "mean_return"]
        self._metrics = self._eval = None
        if enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._metrics = self._open("metrics.csv", self.metric_fields, metric_rows)
            self._eval = self._open("eval.csv", self.eval_fields, eval_rows)

    def _open(self, name, fields, rows):
        f = open(self.out_dir / name, "w", newline="")
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        return f, writer

    def write_json(self, name: str, obj) -> None:
        """Write ``obj`` as indented strict JSON (:func:`json_text`: NaN and infinities as ``null``) to
        ``out_dir/name`` (atomic replace)."""
        if not self.enabled:
            return
        tmp = self.out_dir / (name + ".tmp")
        tmp.write_text(json_text(obj, indent=2) + "\n")
        tmp.replace(self.out_dir / name)

    def write_metrics(self, metrics, runs=None) -> list[dict]:
        """One row per run from per-run arrays (``ChunkMetrics`` with a leading run axis).

        Args:
          runs: global run indices of the arrays' first entries (a seed wave); default ``0 .. num_runs - 1``.
        """
        rows = []
        m = {k: np.asarray(v) for k, v in metrics._asdict().items()}
        S = self.num_seeds
        for j, s in enumerate(range(self.num_runs) if runs is None else runs):
            s = int(s)
            row = {"config": s // S, "seed": s % S, "env_steps": int(m["env_steps"][j]),
                   "episodic_return": float(m["episodic_return"][j]),
                   "num_episodes": int(m["num_episodes"][j]), "epsilon": float(m["exploration"][j])}
            for i in range(self.num_layers):
                row[f"td_loss_l{i + 1}"] = float(m["td_loss"][j, i])
                row[f"q_mean_l{i + 1}"] = float(m["q_mean"][j, i])
            for i, name in enumerate(self.diagnostic_names):
                row[name] = float(m["diagnostics"][j, i])
            rows.append(row)
        self._write(self._metrics, rows)
        if self.trackers is not None:
            self.trackers.log(rows, "metrics")
        return rows

    def write_eval(self, env_steps: int, returns, runs=None) -> list[dict]:
        """Rows for an evaluation: ``returns [runs, L]`` mean return of each layer-prefix policy (``runs``
        as in :meth:`write_metrics`)."""
        returns = np.asarray(returns)
        S = self.num_seeds
        runs = range(self.num_runs) if runs is None else [int(r) for r in runs]
        rows = [{"config": r // S, "seed": r % S, "env_steps": env_steps, "layers": i + 1,
                 "mean_return": float(returns[j, i])}
                for j, r in enumerate(runs) for i in range(returns.shape[1])]
        self._write(self._eval, rows)
        if self.trackers is not None:
            self.trackers.log(rows, "eval")
        return rows

    def rewrite(self, metric_rows: list[dict], eval_rows: list[dict]) -> None:
        """Replace both CSV files by these rows (atomically: a new file is renamed over the old one)."""
        if not self.enabled:
            return
        handles = []
        for handle, name, fields, rows in ((self._metrics, "metrics.csv", self.metric_fields, metric_rows),
                                           (self._eval, "eval.csv", self.eval_fields, eval_rows)):
            tmp = self.out_dir / (name + ".tmp")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
            handle[0].close()
            tmp.replace(self.out_dir / name)
            f = open(self.out_dir / name, "a", newline="")
            handles.append((f, csv.DictWriter(f, fieldnames=fields)))
        self._metrics, self._eval = handles

    def write_rows(self, kind: str, rows: list[dict]) -> list[dict]:
        """Append ready-made rows to ``"metrics"`` (metrics.csv) or ``"eval"`` (eval.csv) and flush.

        For producers that build their rows themselves (the brax SAC baseline, ``purejax_ad.sac``); a
        column missing from a row is written empty. Returns ``rows``.
        """
        self._write({"metrics": self._metrics, "eval": self._eval}[kind], rows)
        return rows

    def _write(self, handle, rows):
        if not self.enabled:
            return
        f, writer = handle
        writer.writerows(rows)
        f.flush()

    def close(self, summary: dict | None = None) -> None:
        """Close the CSV files and the trackers (``summary``: the run's, for the trackers' run summaries)."""
        if self.enabled:
            for f, _ in (self._metrics, self._eval):
                f.close()
        if self.trackers is not None:
            self.trackers.close(summary)


def json_ready(obj):
    """``obj`` with numpy scalars and arrays as Python numbers and lists, and every NaN or infinite float as
    ``None`` (JSON ``null``), recursively through dicts, lists and tuples (``summary.json``: a statistic
    without data, e.g. the mean return of runs that finished no episode, is ``null``)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (:func:`json_ready`; ``allow_nan=False``, so no bare ``NaN`` / ``Infinity``
    that strict parsers reject).

    Raises:
      TypeError: an object JSON cannot represent.
    """
    return json.dumps(json_ready(obj), indent=indent, allow_nan=False)


def mean_and_se(values) -> tuple[float, float]:
    """Mean and standard error (ddof=1; 0 for a single value) over seeds, ignoring NaN."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    se = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return float(np.mean(v)), se


def plot_learning_curve(metric_rows: list[dict], eval_rows: list[dict], path: str | os.PathLike, title: str,
                        config_labels: list[str] | None = None, panel_titles: tuple[str, str] | None = None) -> None:
    """Mean training return over seeds with a +-3 SE band (the paper's style), and per-layer eval.

    Args:
      metric_rows / eval_rows: rows as written by :class:`RunWriter` (a ``config`` key per row, 0 if absent).
      config_labels: one legend label per sweep config; with more than one config, one curve per config and
        the evaluation panel shows the full-network policy of each.
      panel_titles: ``(left, right)`` panel titles instead of the AD ones (training return; per-layer eval).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def band(ax, rows, key, value, label, color, marker=None):
        xs = sorted({r["env_steps"] for r in rows})
        stats = [mean_and_se([r[value] for r in rows if r["env_steps"] == x]) for x in xs]
        m, e = np.array([a for a, _ in stats]), np.array([b for _, b in stats])
        ax.plot(xs, m, color=color, marker=marker, label=label)
        ax.fill_between(xs, m - 3 * e, m + 3 * e, color=color, alpha=0.2)

    configs = sorted({r.get("config", 0) for r in metric_rows}) or [0]
    labels = config_labels or [f"config {c}" for c in configs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in configs:
        rows = [r for r in metric_rows if r.get("config", 0) == c]
        band(axes[0], rows, "env_steps", "episodic_return", labels[c] if len(configs) > 1 else None, f"C{c % 10}")
    panel_titles = panel_titles or ("training return (mean, ±3 SE)", "per-layer evaluation (ε=0.05)")
    axes[0].set(xlabel="env steps (per seed)", ylabel="episodic return", title=panel_titles[0])
    layers = sorted({r["layers"] for r in eval_rows})
    if len(configs) > 1:
        for c in configs:
            rows = [r for r in eval_rows if r.get("config", 0) == c and r["layers"] == max(layers)]
            band(axes[1], rows, "env_steps", "mean_return", labels[c], f"C{c % 10}", "o")
    else:
        for i in layers:
            rows = [r for r in eval_rows if r["layers"] == i]
            band(axes[1], rows, "env_steps", "mean_return", f"mean of layers 1..{i}", f"C{i - 1}", "o")
    axes[1].set(xlabel="env steps (per seed)", ylabel="eval return", title=panel_titles[1])
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
