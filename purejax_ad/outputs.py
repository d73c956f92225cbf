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
          "sticky_action_prob", "minatar_time_limit", "td_loss")


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
      num_seeds: rows are written for seeds ``0..num_seeds-1`` only (padding seeds are dropped).
      metric_rows / eval_rows: rows already computed (a resumed run), written first.
      enabled: ``False`` writes nothing (processes other than 0 of a multi-host run).
    """

    def __init__(self, out_dir: str | os.PathLike, num_layers: int, num_seeds: int,
                 metric_rows: list[dict] = (), eval_rows: list[dict] = (), enabled: bool = True):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self.num_layers = num_layers
        self.num_seeds = num_seeds
        layer_cols = [f"td_loss_l{i + 1}" for i in range(num_layers)] + [f"q_mean_l{i + 1}" for i in range(num_layers)]
        self.metric_fields = ["seed", "env_steps", "episodic_return", "num_episodes", "epsilon", *layer_cols]
        self.eval_fields = ["seed", "env_steps", "layers", "mean_return"]
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
        """Write ``obj`` as indented JSON to ``out_dir/name`` (atomic replace)."""
        if not self.enabled:
            return
        tmp = self.out_dir / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
        tmp.replace(self.out_dir / name)

    def write_metrics(self, metrics) -> list[dict]:
        """One row per seed from per-seed arrays (``ChunkMetrics`` with a leading ``[num_seeds]`` axis)."""
        rows = []
        m = {k: np.asarray(v) for k, v in metrics._asdict().items()}
        for s in range(self.num_seeds):
            row = {"seed": s, "env_steps": int(m["env_steps"][s]), "episodic_return": float(m["episodic_return"][s]),
                   "num_episodes": int(m["num_episodes"][s]), "epsilon": float(m["epsilon"][s])}
            for i in range(self.num_layers):
                row[f"td_loss_l{i + 1}"] = float(m["td_loss"][s, i])
                row[f"q_mean_l{i + 1}"] = float(m["q_mean"][s, i])
            rows.append(row)
        self._write(self._metrics, rows)
        return rows

    def write_eval(self, env_steps: int, returns) -> list[dict]:
        """Rows for an evaluation: ``returns [num_seeds, L]`` mean return of each layer-prefix policy."""
        returns = np.asarray(returns)
        rows = [{"seed": s, "env_steps": env_steps, "layers": i + 1, "mean_return": float(returns[s, i])}
                for s in range(self.num_seeds) for i in range(returns.shape[1])]
        self._write(self._eval, rows)
        return rows

    def _write(self, handle, rows):
        if not self.enabled:
            return
        f, writer = handle
        writer.writerows(rows)
        f.flush()

    def close(self) -> None:
        """Close the CSV files."""
        if self.enabled:
            for f, _ in (self._metrics, self._eval):
                f.close()


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def mean_and_se(values) -> tuple[float, float]:
    """Mean and standard error (ddof=1; 0 for a single value) over seeds, ignoring NaN."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    se = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return float(np.mean(v)), se


def plot_learning_curve(metric_rows: list[dict], eval_rows: list[dict], path: str | os.PathLike, title: str) -> None:
    """Mean training return over seeds with a +-3 SE band (the paper's style), and per-layer eval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = sorted({r["env_steps"] for r in metric_rows})
    stats = [mean_and_se([r["episodic_return"] for r in metric_rows if r["env_steps"] == s]) for s in steps]
    mean = np.array([m for m, _ in stats])
    se = np.array([e for _, e in stats])
    axes[0].plot(steps, mean, color="C0")
    axes[0].fill_between(steps, mean - 3 * se, mean + 3 * se, color="C0", alpha=0.25)
    axes[0].set(xlabel="env steps (per seed)", ylabel="episodic return", title="training return (mean, ±3 SE)")
    layers = sorted({r["layers"] for r in eval_rows})
    for i in layers:
        ev_steps = sorted({r["env_steps"] for r in eval_rows if r["layers"] == i})
        st = [mean_and_se([r["mean_return"] for r in eval_rows if r["layers"] == i and r["env_steps"] == s])
              for s in ev_steps]
        m = np.array([a for a, _ in st])
        e = np.array([b for _, b in st])
        axes[1].plot(ev_steps, m, marker="o", label=f"mean of layers 1..{i}")
        axes[1].fill_between(ev_steps, m - 3 * e, m + 3 * e, alpha=0.15)
    axes[1].set(xlabel="env steps (per seed)", ylabel="eval return", title="per-layer evaluation (ε=0.05)")
    if layers:
        axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
