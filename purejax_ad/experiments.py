"""The paper's experiments as one command: every run of a grid, in sequence and resumable, then the figure.

    python -m purejax_ad.experiments {minatar,dmc,classic} [--dry-run] [--out ROOT] [--only PATTERN ...]
                                     [--num-seeds N] [--total-timesteps N] [--smoke] [--full-plan] [-- TRAIN FLAGS]

A grid (:func:`grids`) is environments x methods; a method is a preset plus flags. Each run is one
``python -m purejax_ad.train --preset P --env E ... --out ROOT/<env>-<method>`` with the preset's seeds
(vmapped in one program), run through the same code path as that command (:func:`purejax_ad.cli.main`).
``--dry-run`` lists every run with its command, its status and the cheap part of its pre-flight plan (state
per seed against the device's memory, from ``jax.eval_shape``; nothing is compiled: ``--full-plan`` compiles
each run for the whole plan of ``python -m purejax_ad.train --dry-run``). Without it, the runs go one after
the other: a finished run is skipped, a stopped one resumed from its newest checkpoint, so the same command
continues an interrupted experiment. Then ``purejax_ad.compare`` draws every finished run of the grid into
``ROOT/<experiment>.png`` (and ``.md``). docs/running.md, "The paper's experiments".

Exit status: 0 every selected run finished; 2 invalid input (nothing run), or a run that was refused or
cannot be resumed; 3 stopped early (SIGINT, SIGTERM, ``--stop-after-steps``): run the same command again;
4 a run stopped on a non-finite value (the other runs went on).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from purejax_ad.algos import ALGO_SPECS
from purejax_ad.config import RUN_CONTROL_FIELDS, Config, ConfigError
from purejax_ad.control import EXIT_BAD_INPUT, EXIT_NONFINITE, EXIT_OK, EXIT_STOPPED


@dataclass(frozen=True)
class Method:
    """One curve of a grid: ``preset`` plus ``args`` (train flags); ``name`` labels its run directories and
    its curve in the figure."""

    name: str
    preset: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grid:
    """An experiment: every method on every env (``envs`` x ``methods`` runs)."""

    name: str
    description: str
    envs: tuple[str, ...]
    methods: tuple[Method, ...]


#: The five MinAtar games of the AD paper (Fig. 4).
MINATAR_ENVS = ("Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar")
#: AD (``paper-minatar``), the paper's ablations (Figs. 5-6; README "Methods") and the MinAtar DQN baseline.
MINATAR_PRESETS = ("paper-minatar", "paper-minatar-no-forward", "paper-minatar-no-recurrent", "paper-minatar-no-skip",
                   "paper-minatar-single-128", "paper-minatar-single-256", "paper-minatar-single-512",
                   "paper-minatar-last-layer", "minatar-dqn")
#: The DMC tasks of the AD paper's Figs. 4 and 7 (docs/algorithm.md, "Reference results").
DMC_TASKS = ("dmc/walker-walk", "dmc/walker-run", "dmc/hopper-hop", "dmc/cheetah-run", "dmc/reacher-hard")
#: Classic control (the AD paper's Fig. 8 without LunarLander, which gymnax lacks).
CLASSIC_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
#: ``--smoke``: tiny sizes that every preset accepts (seconds per run on a CPU for classic control): 2 seeds,
#: 2,000 env steps, chunks of 500 after a 500-step warm-up, evaluations at 0, 1,000 and the end, a checkpoint
#: every 1,000 steps. Flags given after it override it.
SMOKE = ("--num-seeds", "2", "--total-timesteps", "2000", "--learning-starts", "500", "--log-interval", "500",
         "--eval-interval", "1000", "--checkpoint-interval", "1000", "--batch-size", "16", "--num-eval-episodes", "2",
         "--eval-max-steps", "100")


def grids() -> dict[str, Grid]:
    """The experiments, by name. Methods are presets, and rows of :data:`purejax_ad.algos.ALGO_SPECS`:

    * ``minatar``: :data:`MINATAR_ENVS` x :data:`MINATAR_PRESETS` (45 runs of 10 seeds);
    * ``dmc``: :data:`DMC_TASKS` x {``paper-dmc`` (AD-DQN), ``paper-dmc`` with the quantile AD algo and the
      paper's 8 seeds (AD-QRDQN, Fig. 7), ``arq-dmc``}; the SAC baseline is ``python -m purejax_ad.sac``
      (docs/running.md);
    * ``classic``: :data:`CLASSIC_ENVS` x every discrete-action Q-learning algo, the AD ones on
      ``classic-fast`` and the backprop Q-networks on ``classic-dqn`` (README "Results").
    """
    quantile_ad = [s.name for s in ALGO_SPECS.values() if s.network == "ad" and s.quantiles and s.local_learning]
    classic = tuple(Method(s.name, "classic-fast" if s.network == "ad" else "classic-dqn", ("--algo", s.name))
                    for s in ALGO_SPECS.values() if s.family == "q-learning" and s.action_space == "discrete")
    return {
        "minatar": Grid("minatar", "AD, its ablations and DQN on MinAtar (AD paper, Figs. 4-6)", MINATAR_ENVS,
                        tuple(Method(p, p) for p in MINATAR_PRESETS)),
        "dmc": Grid("dmc", "AD-DQN, AD-QRDQN and ARQ on DeepMind Control (AD paper, Figs. 4 and 7)", DMC_TASKS,
                    (Method("paper-dmc", "paper-dmc"),
                     *(Method(f"paper-dmc-{a}", "paper-dmc", ("--algo", a, "--num-seeds", "8")) for a in quantile_ad),
                     Method("arq-dmc", "arq-dmc"))),
        "classic": Grid("classic", "every discrete-action Q-learning method on classic control (AD paper, Fig. 8)",
                        CLASSIC_ENVS, classic),
    }


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: ``args`` are its ``python -m purejax_ad.train`` flags (``--out`` included)."""

    env: str
    method: Method
    out: Path
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        """``<env>-<method>``, the env id with ``/`` as ``-`` (the run directory's name)."""
        return f"{self.env.replace('/', '-')}-{self.method.name}"

    @property
    def command(self) -> str:
        return shlex.join(["python", "-m", "purejax_ad.train", *self.args])

    def status(self) -> str:
        """``new``, ``complete``, ``nonfinite`` (stopped on a NaN/Inf: finished, not resumed), ``resumable``
        (a checkpoint, not complete) or ``stale`` (files but no checkpoint: cannot be resumed)."""
        if not self.out.is_dir() or not any(self.out.iterdir()):
            return "new"
        try:
            summary = json.loads((self.out / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
        if summary.get("complete") is True:
            return "complete"
        if summary.get("stop_reason") == "nonfinite":
            return "nonfinite"
        checkpoints = self.out / "checkpoints"
        if (self.out / "config.json").is_file() and checkpoints.is_dir() and any(
                p.name.isdigit() for p in checkpoints.iterdir()):
            return "resumable"
        return "stale"


def grid_runs(grid: Grid, root: Path, overrides: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> list[GridRun]:
    """The runs of ``grid`` under ``root``, env-major, each with ``overrides`` (train flags) after its method's
    flags; ``only``: keep the runs whose name matches one of the patterns (shell wildcards; a pattern without
    one matches as a substring)."""
    runs = []
    for env in grid.envs:
        for method in grid.methods:
            out = root / f"{env.replace('/', '-')}-{method.name}"
            runs.append(GridRun(env, method, out, ("--preset", method.preset, "--env", env, *method.args,
                                                   *overrides, "--out", str(out))))
    glob = lambda p: p if any(ch in p for ch in "*?[") else f"*{p}*"  # noqa: E731
    return [r for r in runs if not only or any(fnmatch.fnmatchcase(r.name, glob(p)) for p in only)]


def config_changes(stored: Config, requested: Config) -> list[str]:
    """The fields (other than run-control ones and ``out``) in which a stored run differs from the request."""
    return [f"{f.name} {getattr(stored, f.name)!r} -> {getattr(requested, f.name)!r}" for f in dataclasses.fields(Config)
            if f.name not in (*RUN_CONTROL_FIELDS, "out") and getattr(stored, f.name) != getattr(requested, f.name)]


def check_runs(runs: list[GridRun]) -> tuple[list[Config], list[str]]:
    """Every run's config (parsed and checked as ``python -m purejax_ad.train`` does) and every problem: an
    invalid config, or a run directory that holds a run of another config."""
    from purejax_ad import cli

    configs, problems = [], []
    for run in runs:
        try:
            config = cli.parse_args([*run.args, "--dry-run"])[0]
        except ConfigError as e:
            problems.append(f"{run.name}: {e}")
            continue
        configs.append(config)
        if run.status() in ("complete", "nonfinite", "resumable"):
            try:
                changes = config_changes(cli.load_run_config(run.out), config)
            except ConfigError as e:
                changes = [str(e)]
            if changes:
                problems.append(f"{run.out} holds a run of another config ({'; '.join(changes)}); "
                                "give another --out or the run's own sizes")
    return configs, problems


def cheap_plan(config: Config) -> str:
    """One line of the pre-flight plan without compiling: state bytes per seed (``jax.eval_shape`` of one
    seed's init) x seeds per device against the device's memory (:func:`purejax_ad.plan.summary_line`)."""
    import jax

    from purejax_ad.envs import make_config_env
    from purejax_ad.plan import Plan, device_memory, refusal, state_bytes, summary_line
    from purejax_ad.program import make_program
    from purejax_ad.sharding import padded_num_seeds, seed_sharding

    program = make_program(config, make_config_env(config))
    D = seed_sharding(config.num_devices).mesh.size
    runs = config.num_configs * config.num_seeds
    if isinstance(config.seeds_per_wave, int):
        runs = min(runs, config.seeds_per_wave)
    plan = Plan(padded_num_seeds(runs, D) // D, D, state_bytes(jax.eval_shape(program.init, jax.random.key(0))),
                {}, {}, *device_memory(config.memory_budget_gb))
    return summary_line(plan) + ("" if plan.fits else f"\n      does not fit: {refusal(plan)}")


def dry_run(grid: Grid, runs: list[GridRun], configs: list[Config], full_plan: bool) -> None:
    """Print every run: name, what it is, status, command and plan; then the totals."""
    from purejax_ad.run import plan_run
    from purejax_ad.plan import format_plan

    print(f"{grid.name}: {grid.description}; {len(runs)} runs")
    t0, steps = time.perf_counter(), 0
    for i, (run, c) in enumerate(zip(runs, configs), 1):
        status = run.status()
        seeds = c.num_seeds * c.num_configs
        steps += seeds * c.effective_total_timesteps
        print(f"\n[{i}/{len(runs)}] {run.name}: {c.algo} ({c.preset}), {seeds} seeds x "
              f"{c.effective_total_timesteps:,} env steps; {status}")
        print(f"  command: {run.command}")
        if status == "resumable":
            print(f"  resume:  python -m purejax_ad.train --resume {run.out}")
        if full_plan:
            print("\n".join(f"  {line}".rstrip() for line in format_plan(plan_run(c), c).splitlines()))
        else:
            print(f"  {cheap_plan(c)}")
    counts = {s: sum(r.status() == s for r in runs) for s in ("new", "resumable", "complete", "nonfinite", "stale")}
    print(f"\n{len(runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}); {steps:,} env steps in "
          f"all; figure: {runs[0].out.parent / (grid.name + '.png')} (planned in {time.perf_counter() - t0:.1f} s)",
          flush=True)


def draw_figure(grid: Grid, root: Path) -> Path | None:
    """``purejax_ad.compare`` of every finished run of the grid under ``root`` (labels: the methods) into
    ``root/<grid>.png`` and ``.md``; ``None`` (with a note) when no run has finished or pandas is missing."""
    finished = [r for r in grid_runs(grid, root) if r.status() in ("complete", "nonfinite")]
    if not finished:
        print("note: no finished run yet, so no figure")
        return None
    try:
        from purejax_ad import compare
    except ImportError as e:
        print(f"note: the figure needs purejax_ad.compare's libraries ({e}); pip install 'purejax_ad[eval]'")
        return None
    path = root / f"{grid.name}.png"
    code = compare.main([*(str(r.out) for r in finished), "--out", str(path), "--labels",
                         *(r.method.name for r in finished), "--title", f"{grid.name}: {grid.description}"])
    return path if code == 0 else None


def run_grid(grid: Grid, runs: list[GridRun], root: Path) -> int:
    """Run ``runs`` one after the other (skip finished ones, resume stopped ones), then draw the figure.
    Returns the exit status (module docstring)."""
    from purejax_ad import cli

    failed, nonfinite = [], []
    for i, run in enumerate(runs, 1):
        status = run.status()
        print(f"\n=== [{i}/{len(runs)}] {run.name} ({status}) ===", flush=True)
        if status in ("complete", "nonfinite"):
            print(f"skipped: already finished ({status}) in {run.out}")
            if status == "nonfinite":
                nonfinite.append(run.name)
            continue
        if status == "stale":
            print(f"error: {run.out} holds an interrupted run without a checkpoint, which cannot be resumed; "
                  "remove it to run it again", file=sys.stderr)
            failed.append(run.name)
            continue
        if status == "resumable":
            args = ["--resume", str(run.out)] + _without(run.args, "--preset", "--out")
            print(f"+ python -m purejax_ad.train --resume {run.out}", flush=True)
        else:
            args = list(run.args)
            print(f"+ {run.command}", flush=True)
        code = cli.main(args)
        if code == EXIT_STOPPED:
            print(f"\nstopped in {run.name}; run the same command again to continue "
                  "(finished runs are skipped, this one resumes)", file=sys.stderr)
            return EXIT_STOPPED
        if code == EXIT_NONFINITE:
            nonfinite.append(run.name)
        elif code != EXIT_OK:
            failed.append(run.name)
    figure = draw_figure(grid, root)
    print(f"\n{len(runs) - len(failed)} of {len(runs)} runs finished under {root}"
          + (f"; figure {figure}" if figure else "")
          + (f"; stopped on a non-finite value: {', '.join(nonfinite)}" if nonfinite else "")
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return EXIT_BAD_INPUT if failed else EXIT_NONFINITE if nonfinite else EXIT_OK


def _without(args: tuple[str, ...], *flags: str) -> list[str]:
    """``args`` without the given one-value flags and their values."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        else:
            out.append(a)
    return out


def parse(argv: list[str]) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """``(options, train flags)``: the options of this command, and the train flags every run gets (``--smoke``'s,
    then ``--num-seeds`` / ``--total-timesteps``, then those after ``--``).

    Raises:
      SystemExit: argparse's errors (status 2) and ``--help`` (0).
    """
    parser = argparse.ArgumentParser(prog="python -m purejax_ad.experiments", description=__doc__.split("\n\n")[0],
                                     epilog="Flags after -- go to every run's python -m purejax_ad.train "
                                            "(e.g. -- --tensorboard true).")
    parser.add_argument("experiment", choices=list(grids()), help="the grid to run")
    parser.add_argument("--dry-run", action="store_true", help="list every run with its command and plan; run nothing")
    parser.add_argument("--out", type=Path, default=None, help="root directory of the runs (default runs/EXPERIMENT)")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="only the runs whose <env>-<method> name matches (repeatable; e.g. Breakout, '*-dqn')")
    parser.add_argument("--num-seeds", type=int, default=None, help="seeds per run instead of the presets'")
    parser.add_argument("--total-timesteps", type=int, default=None, help="env steps per seed instead of the presets'")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for a CPU smoke test (SMOKE in this module)")
    parser.add_argument("--full-plan", action="store_true",
                        help="with --dry-run: compile each run for its whole plan (slow; FLOPs and XLA memory)")
    head, tail = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    options = parser.parse_args(head)
    overrides = list(SMOKE if options.smoke else ())
    for flag, value in (("--num-seeds", options.num_seeds), ("--total-timesteps", options.total_timesteps)):
        if value is not None:
            overrides += [flag, str(value)]
    return options, (*overrides, *tail)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (module docstring)."""
    options, overrides = parse(sys.argv[1:] if argv is None else argv)
    grid = grids()[options.experiment]
    root = options.out or Path("runs") / grid.name
    runs = grid_runs(grid, root, overrides, tuple(options.only))
    if not runs:
        print(f"error: no run of {grid.name} matches --only {' '.join(options.only)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    configs, problems = check_runs(runs)
    if problems:
        print("error: invalid config: " + "\n       ".join(problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    if options.dry_run:
        dry_run(grid, runs, configs, options.full_plan)
        return EXIT_OK
    try:
        return run_grid(grid, runs, root)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_STOPPED


if __name__ == "__main__":
    from purejax_ad.cpu_cores import use_cpu_cores

    use_cpu_cores()  # one CPU device per core, before anything starts JAX
    sys.exit(main())
