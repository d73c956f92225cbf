"""Command line: evaluate (and watch) a trained run, ``python -m purejax_ad.evaluate RUN_DIR [options]``.

    python -m purejax_ad.evaluate runs/cartpole                       # final parameters, the run's settings
    python -m purejax_ad.evaluate runs/cartpole --checkpoint 100000 --episodes 100 --epsilon 0
    python -m purejax_ad.evaluate runs/cartpole --render cartpole.gif

Evaluates every (config, seed) run of ``RUN_DIR`` with :func:`purejax_ad.evaluation.evaluate`, the loop
training evaluates with: per run and per evaluation policy (AD: layer prefix ``layers = i``, the mean Q of
layers 1..i) the mean return of ``--episodes`` episodes at ``--epsilon``. The parameters are the run's final
ones (``RUN_DIR/params/``, :mod:`purejax_ad.trained`) or those of checkpoint ``--checkpoint STEP``; each run
uses its own evaluation key of that point (:func:`purejax_ad.seeds.eval_keys`), so with the run's own
settings (the defaults) the result equals the rows ``eval.csv`` holds for that step. Prints a table and
writes ``RUN_DIR/evaluate-<final|STEP>.csv`` (``eval.csv``'s columns) and ``.json`` (settings, means).

``--render FILE.gif`` also draws the first evaluation episode of the full policy (all layers) of one run
(:mod:`purejax_ad.render`). Exit status: 0 done; 2 bad input (one ``error:`` line, nothing written).
docs/running.md, "Trained agents".
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from pathlib import Path

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):  # before mujoco is imported: headless GL
    os.environ["MUJOCO_GL"] = "egl"

if __name__ == "__main__":  # one CPU device per core, as training used (before JAX starts)
    from purejax_ad.cpu_cores import use_cpu_cores

    use_cpu_cores()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from purejax_ad.algos import algo_spec  # noqa: E402
from purejax_ad.checkpoint import CHECKPOINT_DIR, Checkpointer  # noqa: E402
from purejax_ad.config import ConfigError, config_from_record  # noqa: E402
from purejax_ad.control import EXIT_BAD_INPUT, EXIT_OK  # noqa: E402
from purejax_ad.envs import make_config_env  # noqa: E402
from purejax_ad.evaluation import evaluate  # noqa: E402
from purejax_ad.host_record import HostRecord  # noqa: E402
from purejax_ad.outputs import mean_and_se  # noqa: E402
from purejax_ad.program import make_program  # noqa: E402
from purejax_ad.seeds import eval_keys, run_hyperparams, run_keys, wave_runs  # noqa: E402
from purejax_ad.sharding import default_num_devices, per_device_vmap, seed_sharding  # noqa: E402
from purejax_ad.trained import params_file, params_from_entry, params_template, read_params_file  # noqa: E402


@dataclasses.dataclass
class Group:
    """Runs evaluated together, as one seed wave was in training: ``params`` stacked ``[len(runs)]``."""

    runs: np.ndarray
    params: tuple
    env_steps: int
    eval_index: int


def load_run(run_dir: Path):
    """``(config, spec)`` of a ``purejax_ad.train`` run directory.

    Raises:
      ConfigError: not such a run directory (missing config, a run of another trainer, unknown algo).
    """
    try:
        record = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{run_dir}: not a run directory (no readable config.json)") from None
    if record.get("source"):
        raise ConfigError(f"{run_dir} is a run of {record['source']}; purejax_ad.evaluate evaluates runs of "
                          "python -m purejax_ad.train")
    config = config_from_record(record, out=str(run_dir))
    try:
        return config, algo_spec(config.algo)
    except KeyError as e:
        raise ConfigError(f"{run_dir}: {e.args[0]}") from None


def _checkpoint_groups(config, program, run_dir: Path, step: int | None) -> tuple[list[Group], str]:
    """The runs of one checkpoint (the newest intact one when ``step`` is ``None``) and its label."""
    ckpt_dir = run_dir / CHECKPOINT_DIR
    held = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) if ckpt_dir.is_dir() else []
    if step is not None and step not in held:
        raise ConfigError(f"{run_dir}: no checkpoint {step} (checkpoints: {', '.join(map(str, held)) or 'none'})")
    if not held:
        raise ConfigError(f"{run_dir}: neither final parameters ({run_dir / 'params'}) nor a checkpoint to evaluate")
    reader = Checkpointer(run_dir)
    try:
        step, record, damaged = (step, reader.read_host(step), []) if step is not None else reader.read_newest_intact_host()
        if record is None:
            raise ValueError("; ".join(f"{d.step}: {d.reason}" for d in damaged))
        host = HostRecord.from_json(record, str(run_dir))
        runs = wave_runs(config, host.wave, host.wave_size)
        keys, hyper = run_keys(config, runs), run_hyperparams(config, runs)
        sharding = _sharding(config, len(runs))
        shapes = jax.eval_shape(jax.vmap(program.init), keys, hyper)
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)
        params = reader.restore_params(abstract, step)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 -- orbax / tensorstore raise many types for a damaged checkpoint
        raise ConfigError(f"{run_dir}: checkpoint {step} cannot be read ({type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None
    finally:
        reader.close()
    S = config.num_seeds
    mine = {int(r) for r in runs if r < config.num_configs * S}
    evaluated_here = any(row["env_steps"] == host.env_steps and row["config"] * S + row["seed"] in mine
                         for row in host.eval_rows)
    index = host.n_evals - 1 if evaluated_here else host.n_evals
    return [Group(runs, params, host.env_steps, index)], str(step)


def _final_groups(config, agent, run_dir: Path) -> list[Group] | None:
    """Every run's final parameters, grouped by training wave (``None`` unless every run has its file)."""
    S, C = config.num_seeds, config.num_configs
    paths = [params_file(run_dir, r % S, r // S, C) for r in range(C * S)]
    if not all(p.is_file() for p in paths):
        return None
    template = params_template(agent, config)
    entries = [read_params_file(p) for p in paths]
    groups = []
    for wave in sorted({e["wave"] for e in entries}):
        in_wave = [e for e in entries if e["wave"] == wave]
        size = in_wave[0]["wave_size"]
        runs = wave_runs(config, wave, size)
        by_run = {e["run"]: params_from_entry(e, template) for e in in_wave}
        stack = [by_run.get(int(r), by_run[min(by_run)]) for r in runs]  # padding runs: a copy, discarded
        params = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *stack)
        index = in_wave[0]["eval_index"]
        groups.append(Group(runs, params, in_wave[0]["env_steps"], 0 if index is None else index))
    return groups


def _trained_num_devices(config, run_dir: Path) -> int | None:
    """The devices training sharded the runs over: ``--num-devices``, else ``summary.json``'s ``num_devices``,
    else what training would pick on this host (:func:`purejax_ad.sharding.default_num_devices`)."""
    if config.num_devices is not None:
        return config.num_devices
    try:
        recorded = json.loads((run_dir / "summary.json").read_text()).get("num_devices")
    except (OSError, ValueError):
        recorded = None
    if isinstance(recorded, int) and recorded >= 1:
        return recorded
    return default_num_devices(None, config.num_seeds * config.num_configs)


def _sharding(config, size: int):
    """The run axis over the devices training used, when they divide the group (else one device)."""
    n = config.num_devices or jax.device_count()
    return seed_sharding(n if n <= jax.device_count() and size % n == 0 else 1)


def evaluate_run(run_dir: str | os.PathLike, checkpoint: int | None = None, episodes: int | None = None,
                 epsilon: float | None = None, max_steps: int | None = None) -> dict:
    """Evaluate every run of ``run_dir`` (see the module docstring); nothing is written.

    Args:
      checkpoint: a checkpoint label (``checkpoints/<label>``); ``None``: the final parameters, or the newest
        intact checkpoint of a run that did not finish.
      episodes / epsilon / max_steps: evaluation settings; ``None``: the run's own (``num_eval_episodes``,
        ``eval_epsilon``, ``eval_max_steps``).

    Returns:
      ``{"label", "source", "env_steps", "episodes", "epsilon", "max_steps", "rows" (eval.csv's columns),
      "mean_per_layer", "groups", "config", "agent", "env"}`` (the last four for rendering).

    Raises:
      ConfigError: bad run directory, checkpoint or settings (one line).
    """
    run_dir = Path(run_dir)
    config, spec = load_run(run_dir)
    problems = []
    if episodes is not None and episodes < 1:
        problems.append(f"--episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        problems.append(f"--max-steps must be >= 1, got {max_steps}")
    if epsilon is not None and not 0.0 <= epsilon <= 1.0:
        problems.append(f"--epsilon must be in [0, 1], got {epsilon}")
    if epsilon is not None and spec.family != "q-learning":
        problems.append(f"--epsilon: {config.algo} evaluates its noise-free deterministic policy; epsilon applies "
                        "to the epsilon-greedy (q-learning) algos only")
    if problems:
        raise ConfigError("; ".join(problems))
    config = dataclasses.replace(config, **{k: v for k, v in [("num_eval_episodes", episodes),
                                                                ("eval_epsilon", epsilon),
                                                                ("eval_max_steps", max_steps)] if v is not None})
    config = dataclasses.replace(config, num_devices=_trained_num_devices(config, run_dir))
    env = make_config_env(config)
    program = make_program(config, env)
    groups = None if checkpoint is not None else _final_groups(config, program.agent, run_dir)
    label, source = "final", "params"
    if groups is None:
        groups, label = _checkpoint_groups(config, program, run_dir, checkpoint)
        source = "checkpoint"
    S, R = config.num_seeds, config.num_configs * config.num_seeds
    rows = []
    for g in groups:
        sharding = _sharding(config, len(g.runs))
        run = jax.jit(per_device_vmap(lambda p, k: evaluate(program.agent, env, p, k, config.num_eval_episodes,
                                                            config.eval_max_steps), sharding, 2))
        keys = jax.device_put(eval_keys(run_keys(config, g.runs), g.eval_index), sharding)
        returns = np.asarray(run(jax.device_put(g.params, sharding), keys))
        rows += [{"config": int(r) // S, "seed": int(r) % S, "env_steps": g.env_steps, "layers": i + 1,
                  "mean_return": float(returns[j, i])}
                 for j, r in enumerate(g.runs) if r < R for i in range(returns.shape[1])]
    rows.sort(key=lambda row: (row["config"], row["seed"], row["layers"]))
    layers = sorted({row["layers"] for row in rows})
    means = [mean_and_se([row["mean_return"] for row in rows if row["layers"] == i]) for i in layers]
    return {"run_dir": str(run_dir), "label": label, "source": source,
            "env_steps": sorted({g.env_steps for g in groups}), "episodes": config.num_eval_episodes,
            "epsilon": config.eval_epsilon if spec.family == "q-learning" else None,
            "max_steps": config.eval_max_steps, "eval_index": [g.eval_index for g in groups], "rows": rows,
            "mean_per_layer": [{"layers": i, "mean": m, "se": se} for i, (m, se) in zip(layers, means)],
            "groups": groups, "config": config, "agent": program.agent, "env": env}


def format_table(result: dict) -> str:
    """The per-run, per-layer-prefix table printed by the command line."""
    rows, layers = result["rows"], [m["layers"] for m in result["mean_per_layer"]]
    what = "final parameters" if result["source"] == "params" else f"checkpoint {result['label']}"
    eps = "" if result["epsilon"] is None else f" at epsilon {result['epsilon']}"
    lines = [f"{result['run_dir']}: {what} (env step {', '.join(map(str, result['env_steps']))} per seed), "
             f"{result['episodes']} episode(s) per policy{eps}, at most {result['max_steps']} steps"]
    lines.append("config  seed  " + "  ".join(f"{f'layers={i}':>10}" for i in layers))
    for c, s in sorted({(row["config"], row["seed"]) for row in rows}):
        values = {row["layers"]: row["mean_return"] for row in rows if (row["config"], row["seed"]) == (c, s)}
        lines.append(f"{c:>6}  {s:>4}  " + "  ".join(f"{values[i]:>10.2f}" for i in layers))
    lines.append("  mean  (SE)  " + "  ".join(f"{m['mean']:>6.2f}±{m['se']:<3.1f}" for m in result["mean_per_layer"]))
    return "\n".join(lines)


def write_result(result: dict, render: dict | None = None) -> tuple[Path, Path]:
    """Write ``evaluate-<label>.csv`` and ``.json`` into the run directory; returns their paths."""
    run_dir = Path(result["run_dir"])
    stem = run_dir / f"evaluate-{result['label']}"
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["config", "seed", "env_steps", "layers", "mean_return"])
        writer.writeheader()
        writer.writerows(result["rows"])
    keep = ("label", "source", "env_steps", "episodes", "epsilon", "max_steps", "eval_index", "mean_per_layer",
            "rows")
    summary = {k: result[k] for k in keep} | ({"render": render} if render else {})
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return stem.with_suffix(".csv"), stem.with_suffix(".json")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``python -m purejax_ad.evaluate RUN_DIR [--checkpoint STEP] [--episodes N] [--epsilon E]
    [--max-steps N] [--render FILE.gif and its --render-* options]`` (README "Outputs", docs/running.md "Trained agents").

    Raises:
      SystemExit: argparse's own errors (exit 2) and ``--help``.
    """
    parser = argparse.ArgumentParser(prog="python -m purejax_ad.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory of python -m purejax_ad.train")
    parser.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                        help="evaluate checkpoints/STEP (default: the final parameters)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per policy (default: the run's)")
    parser.add_argument("--epsilon", type=float, default=None, help="epsilon of the epsilon-greedy policies "
                        "(default: the run's eval_epsilon; q-learning algos only)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on an episode (default: the run's)")
    parser.add_argument("--render", type=Path, default=None, metavar="FILE.gif",
                        help="draw the first evaluation episode of the full policy of one run as a GIF")
    parser.add_argument("--render-seed", type=int, default=0, help="the seed drawn by --render (default 0)")
    parser.add_argument("--render-config", type=int, default=0, help="the sweep config drawn by --render")
    parser.add_argument("--render-max-steps", type=int, default=1000, help="frames drawn at most (default 1000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.render is not None:
            from purejax_ad.render import check_render_request

            check_render_request(args.render, args.render_max_steps, args.render_seed, args.render_config,
                                 load_run(args.run_dir)[0])
        result = evaluate_run(args.run_dir, args.checkpoint, args.episodes, args.epsilon, args.max_steps)
        render = None
        if args.render is not None:
            from purejax_ad.render import render_run

            render = render_run(result, args.render, args.render_seed, args.render_config, args.render_max_steps)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_table(result))
    paths = write_result(result, render)
    print(f"written: {paths[0]}, {paths[1]}" + (f", {render['path']} ({render['frames']} frames, return "
                                                 f"{render['return']:.2f})" if render else ""))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
