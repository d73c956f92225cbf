"""Compare finished (or partial) training runs: one figure and one Markdown table.

    python -m purejax_ad.compare RUN_DIR [RUN_DIR ...] --out FIG.png [--table T.md] [--labels A B ...]
                                 [--title TEXT] [--reps 2000]

Every (run, swept config) pair is a *curve*. All step counts are **env steps per seed**; "final return" is each
seed's last ``episodic_return`` row in ``metrics.csv`` (itself a mean over the last 100 training episodes), and
mean ± SE is over seeds (SE with ddof=1, NaN seeds ignored, as in :func:`purejax_ad.outputs.mean_and_se`).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tyro

from purejax_ad.algos import ALGO_SPECS
from purejax_ad.outputs import mean_and_se

#: Rough normalisation anchors ``env -> (random score, reference score)``: a random policy's return and an
#: approximate AD-paper-scale return. A score ``x`` is normalised as ``(x - random) / (reference - random)``.
#: They only put envs on a comparable 0..~1 scale for the aggregate; they are not exact published numbers.
#: An env missing here falls back to min-max over all per-seed final returns of that env's curves.
NORMALISATION = {
    "CartPole-v1": (22.0, 500.0),
    "Acrobot-v1": (-500.0, -60.0),  # reference approximate
    "MountainCar-v0": (-200.0, -100.0),
    "Breakout-MinAtar": (0.4, 80.0),
    "Asterix-MinAtar": (0.5, 60.0),
    "Freeway-MinAtar": (0.0, 60.0),
    "SpaceInvaders-MinAtar": (3.0, 400.0),
    "Seaquest-MinAtar": (0.1, 100.0),
}


@dataclass
class RunData:
    """One run directory. ``metrics``/``evals`` always have an int ``config`` column (0 for older runs)."""

    path: Path
    config: dict
    summary: dict | None
    metrics: pd.DataFrame
    evals: pd.DataFrame

    def _get(self, key, default="?"):
        for source in (self.config, self.summary or {}):
            if source.get(key) is not None:
                return source[key]
        return default

    name = property(lambda self: self.path.resolve().name)
    env = property(lambda self: self._get("env"))
    algo = property(lambda self: self._get("algo"))
    preset = property(lambda self: self._get("preset"))
    # Only the QR methods have a QR loss (config.json records the field for every algo).
    qr_loss = property(lambda self: self._get("qr_loss", None)
                       if self.algo in ALGO_SPECS and ALGO_SPECS[self.algo].quantiles else None)
    complete = property(lambda self: None if self.summary is None else self.summary.get("complete"))

    def sweep(self) -> list[tuple[str, list]]:
        """``[(field, values), ...]`` from config.json (a list of pairs or a dict); ``[]`` for no sweep."""
        sweep = self.config.get("sweep") or []
        return [(k, list(v)) for k, v in (sweep.items() if isinstance(sweep, dict) else sweep)]

    def config_ids(self) -> list[int]:
        """Config indices present in the CSVs or summary (``[0]`` when there are none)."""
        ids = set(self.metrics["config"]) | set(self.evals["config"])
        ids |= {int(c["config"]) for c in (self.summary or {}).get("configs") or [] if "config" in c}
        return sorted(int(i) for i in ids) or [0]

    def swept_values(self, config_id: int) -> dict:
        """``{field: value}`` of the swept fields for one config: from summary.json's ``configs`` entry if any,
        else the ``config_id``-th element of the Cartesian product of the sweep values (first field outermost)."""
        fields = [k for k, _ in self.sweep()]
        for entry in (self.summary or {}).get("configs") or []:
            if int(entry.get("config", -1)) == config_id:
                keys = fields or [k for k in entry if k != "config" and not k.startswith("final_")]
                return {k: entry[k] for k in keys if k in entry}
        combos = list(itertools.product(*[v for _, v in self.sweep()])) if fields else []
        return dict(zip(fields, combos[config_id])) if config_id < len(combos) else {}


def _read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    df["config"] = df["config"].astype(int) if "config" in df else 0
    return df


def check_run_dir(path: str | Path) -> str | None:
    """Why ``path`` is not a usable run directory, or ``None`` when it is."""
    p = Path(path)
    if not p.is_dir():
        return f"run directory does not exist: {p}"
    if not (p / "metrics.csv").is_file():
        return f"no metrics.csv in run directory: {p}"
    return None


def load_run(path: str | Path) -> RunData:
    """Read a run directory (config.json, summary.json and eval.csv are optional; metrics.csv is required)."""
    p = Path(path)
    if (problem := check_run_dir(p)) is not None:
        raise FileNotFoundError(problem)
    read_json = lambda name: json.loads((p / name).read_text()) if (p / name).is_file() else None  # noqa: E731
    evals = (_read_csv(p / "eval.csv") if (p / "eval.csv").is_file()
             else pd.DataFrame(columns=["config", "seed", "env_steps", "layers", "mean_return"]))
    return RunData(p, read_json("config.json") or {}, read_json("summary.json"), _read_csv(p / "metrics.csv"), evals)


@dataclass
class Curve:
    """One (run, config) pair: its rows of metrics.csv / eval.csv, the swept values and the plot label."""

    run: RunData
    config: int
    swept: dict = field(default_factory=dict)
    label: str = ""

    @property
    def metrics(self) -> pd.DataFrame:
        return self.run.metrics[self.run.metrics["config"] == self.config]

    @property
    def evals(self) -> pd.DataFrame:
        return self.run.evals[self.run.evals["config"] == self.config]

    def learning_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(env_steps [T], mean [T], se [T])`` of ``episodic_return`` over seeds at each logged step."""
        groups = list(self.metrics.groupby("env_steps")["episodic_return"])
        stats = np.array([mean_and_se(g.to_numpy()) for _, g in groups]).reshape(-1, 2)
        return np.array([s for s, _ in groups], np.float64), stats[:, 0], stats[:, 1]

    def final_returns(self) -> np.ndarray:
        """``[num_seeds]`` each seed's last ``episodic_return`` row (may be NaN), ordered by seed."""
        last = self.metrics.sort_values("env_steps").groupby("seed").tail(1).sort_values("seed")
        return last["episodic_return"].to_numpy(np.float64)

    def last_eval(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``(env_steps, layers [L], mean [L], se [L])`` at this curve's last eval step (empty if never evaluated)."""
        ev = self.evals
        if ev.empty:
            return math.nan, np.zeros(0, int), np.zeros(0), np.zeros(0)
        step = ev["env_steps"].max()
        last = ev[ev["env_steps"] == step]
        layers = np.array(sorted(last["layers"].unique()), int)
        stats = np.array([mean_and_se(last.loc[last["layers"] == i, "mean_return"].to_numpy()) for i in layers])
        return float(step), layers, stats[:, 0], stats[:, 1]


def base_label(run: RunData) -> str:
    """``"{algo}"``, plus ``" ({qr_loss})"`` for QR algos whose run records one."""
    qr = f" ({run.qr_loss})" if run.qr_loss else ""
    return f"{run.algo}{qr}"


def default_labels(runs: list[RunData]) -> list[str]:
    """:func:`base_label` per run; a run whose base label repeats on its env gets its directory name instead
    (plus the QR loss), so that one label names the same algorithm across envs for the aggregate."""
    keys = [(r.env, base_label(r)) for r in runs]
    qr = lambda r: f" ({r.qr_loss})" if r.qr_loss else ""  # noqa: E731
    return [base_label(r) if keys.count(k) == 1 else r.name + qr(r) for r, k in zip(runs, keys)]


def curves(run: RunData, label: str | None = None) -> list[Curve]:
    """One :class:`Curve` per config of ``run``; with several configs the label gets ``" [field=value, ...]"``."""
    label = base_label(run) if label is None else label
    ids = run.config_ids()
    out = []
    for c in ids:
        swept = run.swept_values(c)
        suffix = ", ".join(f"{k}={v}" for k, v in swept.items()) or f"config={c}"
        out.append(Curve(run, c, swept, f"{label} [{suffix}]" if len(ids) > 1 else label))
    return out


def _fmt(mean: float, se: float) -> str:
    return "-" if math.isnan(mean) else f"{mean:.2f} ± {se:.2f}"


def final_table(all_curves: list[Curve]) -> str:
    """Markdown table, one row per curve: final training return and final all-layers eval (mean ± SE over seeds)."""
    head = ["run", "env", "algo", "preset", "qr_loss", "config", "seeds", "env steps", "final return (mean ± SE)",
            "final eval, all layers (mean ± SE)", "complete"]
    rows = []
    for c in all_curves:
        m = c.metrics
        step, layers, ev_mean, ev_se = c.last_eval()
        steps = m["env_steps"].max() if len(m) else math.nan
        rows.append([c.run.name, c.run.env, c.run.algo, c.run.preset, c.run.qr_loss or "-",
                     ", ".join(f"{k}={v}" for k, v in c.swept.items()) or "-", str(m["seed"].nunique()),
                     "-" if math.isnan(steps) else str(int(steps)), _fmt(*mean_and_se(c.final_returns())),
                     _fmt(ev_mean[-1], ev_se[-1]) if len(layers) else "-",
                     {True: "yes", False: "no", None: "?"}.get(c.run.complete, "?")])
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]) + "\n"


def normalised_scores(all_curves: list[Curve]) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Per-seed final returns normalised per env (:data:`NORMALISATION`, min-max for unknown envs).

    Returns ``(scores, envs, left_out)``: ``scores[label]`` has shape ``[num_seeds, num_envs]`` (NaN seeds dropped,
    cut to the fewest seeds over envs), only for labels present on every env; ``left_out`` are the other labels.
    """
    envs = sorted({c.run.env for c in all_curves})
    per_env: dict[str, dict[str, np.ndarray]] = {e: {} for e in envs}
    for c in all_curves:
        r = c.final_returns()
        per_env[c.run.env].setdefault(c.label, r[~np.isnan(r)])  # first curve wins if a label repeats in an env
    for env, by_label in per_env.items():
        if env in NORMALISATION:
            lo, hi = NORMALISATION[env]
        else:
            allv = np.concatenate(list(by_label.values()))
            lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
        scale = (hi - lo) or 1.0
        per_env[env] = {k: (v - lo) / scale for k, v in by_label.items()}
    labels = list(dict.fromkeys(c.label for c in all_curves))
    common = [lab for lab in labels if all(lab in per_env[e] and per_env[e][lab].size for e in envs)]
    scores = {}
    for lab in common:
        n = min(per_env[e][lab].size for e in envs)
        scores[lab] = np.stack([per_env[e][lab][:n] for e in envs], axis=1)
    return scores, envs, [lab for lab in labels if lab not in common]


def iqm_aggregate(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0) -> dict[str, tuple] | None:
    """rliable IQM with stratified-bootstrap 95% CIs: ``{label: (iqm, ci_low, ci_high)}`` from
    ``scores[label] [num_seeds, num_envs]``; ``None`` (with a printed note) when rliable is not installed."""
    try:
        from rliable import library, metrics
    except ImportError:
        print("note: rliable is not installed (pip install 'purejax_ad[eval]'); skipping the IQM aggregate")
        return None
    func = lambda x: np.array([metrics.aggregate_iqm(x)])  # noqa: E731
    with warnings.catch_warnings():  # rliable 1.2 passes arch the deprecated ``random_state``
        warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)
        point, ci = library.get_interval_estimates(scores, func, reps=reps, random_state=np.random.RandomState(seed))
    return {k: (float(point[k][0]), float(ci[k][0, 0]), float(ci[k][1, 0])) for k in scores}


def plot_comparison(all_curves: list[Curve], path: str | Path, title: str | None = None,
                    aggregate: dict[str, tuple] | None = None) -> None:
    """Save the figure: per env a row of (learning curves, mean ± 3 SE; last-eval per-layer bars, mean ± SE),
    plus a bottom panel of aggregate IQM with 95% CIs when ``aggregate`` is given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(c.run.env for c in all_curves))
    heights = [1.0] * len(envs) + ([0.3 + 0.12 * len(aggregate)] if aggregate is not None else [])
    fig = plt.figure(figsize=(13, 4.5 * sum(heights)))
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights)
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(dict.fromkeys(c.label for c in all_curves))}
    for row, env in enumerate(envs):
        ax, bx = fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])
        env_curves = [c for c in all_curves if c.run.env == env]
        for c in env_curves:
            steps, mean, se = c.learning_curve()
            ax.plot(steps, mean, color=colors[c.label], label=c.label, marker="." if len(steps) < 3 else None)
            ax.fill_between(steps, mean - 3 * se, mean + 3 * se, color=colors[c.label], alpha=0.2)
        ax.set(xlabel="env steps (per seed)", ylabel="episodic return", title=f"{env}: training return (mean ± 3 SE)")
        ax.legend(fontsize=8)
        evals = [c.last_eval() for c in env_curves]
        max_l = max([len(e[1]) for e in evals] + [1])
        width = 0.8 / max_l
        seen = set()
        for g, (step, layers, mean, se) in enumerate(evals):
            for j, (i, m, s) in enumerate(zip(layers, mean, se)):
                bx.bar(g - 0.4 + (j + 0.5) * width, m, width, yerr=s, capsize=2, color=f"C{(i - 1) % 10}",
                       label=None if i in seen else f"layers 1..{i}")
                seen.add(i)
        ticks = [f"{c.label}\n" + ("no eval" if math.isnan(e[0]) else f"@{e[0]:.0f}")
                 for c, e in zip(env_curves, evals)]
        bx.set_xticks(range(len(evals)), ticks, fontsize=7, rotation=15, ha="right")
        bx.set(ylabel="eval return", title=f"{env}: per-layer eval at last eval step (mean ± SE)")
        if seen:
            bx.legend(fontsize=8)
    if aggregate is not None:
        ax = fig.add_subplot(grid[-1, :])
        for y, (lab, (iqm, lo, hi)) in enumerate(aggregate.items()):
            ax.barh(y, hi - lo, left=lo, height=0.5, color=colors.get(lab, "C0"), alpha=0.4)
            ax.plot([iqm, iqm], [y - 0.25, y + 0.25], color="k")
        ax.set_yticks(range(len(aggregate)), list(aggregate))
        ax.set_ylim(-0.6, len(aggregate) - 0.4)
        ax.set(xlabel="normalised final return", title=f"IQM over {len(envs)} envs (95% bootstrap CI)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class Args:
    """Compare training runs: learning curves, per-layer eval, aggregate IQM (2+ envs) and a Markdown table."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories (each with metrics.csv)."""
    out: str
    """Figure path (PNG)."""
    table: str | None = None
    """Markdown table path; default: the figure path with a .md suffix."""
    labels: tuple[str, ...] = ()
    """One label per run directory (default: algo, or the directory name when algos repeat within an env)."""
    title: str | None = None
    """Figure title."""
    reps: int = 2000
    """Bootstrap replications for the IQM confidence intervals."""


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 for bad arguments, with the reason on stderr)."""
    try:
        args = tyro.cli(Args, args=argv, prog="python -m purejax_ad.compare")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    problems = [p for p in map(check_run_dir, args.runs) if p] or ([] if args.runs else ["give at least one run dir"])
    if args.labels and len(args.labels) != len(args.runs):
        problems.append(f"got {len(args.labels)} labels for {len(args.runs)} run directories")
    if problems:
        print("error: " + "\n       ".join(problems), file=sys.stderr)
        return 2
    try:
        runs = [load_run(p) for p in args.runs]
    except (ValueError, KeyError, OSError) as e:
        print(f"error: cannot read a run: {e}", file=sys.stderr)
        return 2
    labels = list(args.labels) or default_labels(runs)
    all_curves = [c for run, lab in zip(runs, labels) for c in curves(run, lab)]
    aggregate = None
    if len({c.run.env for c in all_curves}) > 1:
        scores, envs, left_out = normalised_scores(all_curves)
        if left_out:
            print(f"note: not in the IQM aggregate (not present on every env of {envs}): {', '.join(left_out)}")
        if not scores:
            print("note: no label is present on every env, so there is no IQM aggregate (see --labels)")
        aggregate = iqm_aggregate(scores, reps=args.reps) if scores else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(all_curves, out, args.title, aggregate)
    table = final_table(all_curves)
    table_path = Path(args.table) if args.table else out.with_suffix(".md")
    table_path.write_text(table)
    print(table, end="")
    if aggregate:
        print("\n".join(f"IQM {k}: {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" for k, v in aggregate.items()))
    print(f"wrote {out} and {table_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
