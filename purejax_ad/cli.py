"""Command line: ``python -m purejax_ad.train [--preset NAME] [--env ID] [--num-seeds N] [...]``
(:mod:`purejax_ad.train` runs this module; ``python -m purejax_ad.cli`` is the same).

``--preset`` picks the starting values (default ``classic-fast``); every other flag overrides one
field of :class:`purejax_ad.config.Config` (``--help`` lists them with the preset's defaults).
A comma list given to a sweepable flag (``--learning-rate 1e-4,2.5e-4,5e-4``; see
:data:`purejax_ad.config.SWEEPABLE`) sweeps it: every combination of the lists x every seed runs as one
compiled program, with one output row per (config, seed).
``--dry-run`` prints the pre-flight plan (memory per seed and per device, the compiled chunk's XLA memory,
GFLOP per env step, the device's memory, a lower bound on the wall time) and exits without training.
``--resume RUN_DIR`` continues an interrupted run with the config stored in ``RUN_DIR/config.json``;
only run-control flags (checkpointing, ``--stop-after-steps``, fault handling) may be given with it.

Exit status: 0 complete; 2 invalid input (one ``error:`` line, before anything is compiled or
written); 3 stopped early and resumable (``--stop-after-steps``, SIGINT, SIGTERM); 4 stopped on a
non-finite loss or parameter.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

if __name__ == "__main__" and not {"-h", "--help"} & set(sys.argv[1:]):
    # --distributed: before the imports below (gymnax creates arrays; then JAX refuses). Not for --help,
    # which imports nothing that imports JAX (purejax_ad.flags).
    from purejax_ad.distributed import initialize_from_argv

    initialize_from_argv(sys.argv[1:])

from purejax_ad.algos import ALGO_SPECS
from purejax_ad.config import RUN_CONTROL_FIELDS, SWEEPABLE, Config, ConfigError, config_from_record
from purejax_ad.control import EXIT_BAD_INPUT, EXIT_NONFINITE, EXIT_OK, EXIT_STOPPED, Stopped
from purejax_ad.flags import parse_flags
from purejax_ad.presets import PRESETS, preset_config

#: The command line's name in usage lines.
PROG = "python -m purejax_ad.train"

#: Run-control fields that apply to one invocation only and are not carried over by ``--resume``.
ONE_SHOT_FIELDS = ("stop_after_steps", "inject_nan")


def split_sweeps(args: list[str]) -> tuple[list[str], tuple[tuple[str, tuple[float, ...]], ...]]:
    """Take comma lists out of the arguments: ``--lr 1e-4,3e-4`` -> ``--lr 1e-4`` plus a sweep entry.

    Returns:
      ``(args with every list replaced by its first value, ((field, values), ...))``.

    Raises:
      ConfigError: a comma list for a flag that cannot be swept, or a value that is not a number.
    """
    out, sweep, i = [], [], 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if not eq and i + 1 < len(args):
            value = args[i + 1]
        if flag.startswith("--") and "," in value and not value.startswith("-"):
            name = flag[2:].replace("-", "_")
            if name not in SWEEPABLE:
                raise ConfigError(f"--{flag[2:]} {value}: {name} cannot be swept in one program; "
                                  f"sweepable: {', '.join(SWEEPABLE)}")
            try:
                values = tuple(float(v) for v in value.split(","))
            except ValueError:
                raise ConfigError(f"--{flag[2:]} {value}: every value of a sweep list must be a number") from None
            sweep.append((name, values))
            out += [f"{flag}={value.split(',')[0]}"]
            i += 1 if eq else 2
            continue
        out.append(arg)
        i += 1
    return out, tuple(sweep)


def description(preset: str) -> str:
    """The ``--help`` text above the flags: what the command trains, the algorithms, the presets, the exit statuses."""
    algos = "\n".join(f"  {name}: {spec.description}" for name, spec in ALGO_SPECS.items())
    return (f"Train Artificial Dopamine (AD, Guan et al. 2024), its relatives and backprop baselines on gymnax "
            f"(classic control, MinAtar) and DeepMind Control (MJX) tasks: every seed, and every value of a swept "
            f"hyperparameter (a comma list: --learning-rate 1e-4,3e-4), in one compiled JAX program. "
            f"--preset picks the defaults shown (here: {preset}); every other flag overrides one of them.\n\n"
            f"Algorithms (--algo):\n{algos}\n\n"
            f"Exit status: 0 complete; 2 invalid input; 3 stopped early, resumable (--resume RUN_DIR); "
            f"4 non-finite loss or parameters.")


def _parse(rest: list[str], default: Config, text: str) -> Config:
    # Booleans take a value (``--checkpoint-replay false``), as the README's tables write them.
    rest = [{"true": "True", "false": "False"}.get(a.lower(), a) for a in rest]
    rest, sweep = split_sweeps(rest)
    overrides = {"preset": f"Preset that picks every default shown: {', '.join(PRESETS)}.",
                 "algo": f"Algorithm: {', '.join(ALGO_SPECS)} (see above; README \"Methods\")."}
    config = parse_flags(rest, default, PROG, text, overrides)
    return dataclasses.replace(config, sweep=sweep) if sweep else config


def load_run_config(run_dir: str | Path) -> Config:
    """The :class:`Config` stored in ``run_dir/config.json``; the one-shot fields (``stop_after_steps``,
    ``inject_nan``) are reset to their defaults, every other field keeps its stored value.

    Raises:
      ConfigError: ``run_dir`` holds no readable run config.
    """
    path = Path(run_dir) / "config.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--resume {run_dir}: not a run directory ({path} unreadable: {e})") from None
    kept = {k: v for k, v in record.items() if k not in ONE_SHOT_FIELDS}
    return config_from_record(kept, out=str(run_dir))


def _check(config: Config, out, resume: bool = False) -> Config:
    from purejax_ad.checks import check  # imports JAX (gymnax): only once --help is out of the way

    return check(config, out, resume)


def parse_args(argv: list[str]) -> tuple[Config, bool, bool]:
    """Parse CLI arguments into a checked ``(config, resume, dry_run)``.

    Raises:
      ConfigError: unknown preset, invalid values, or a non-run-control flag given with ``--resume``.
      SystemExit: tyro's own parse errors / ``--help``.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--resume", default=None)
    pre.add_argument("--dry-run", action="store_true")
    known, rest = pre.parse_known_args(argv)
    if known.resume is not None:
        if known.preset is not None:
            raise ConfigError("--resume continues a run with its own config; --preset cannot be given with it")
        stored = load_run_config(known.resume)
        config = _parse(rest, stored, f"Resume the run in {known.resume} (defaults shown: its stored config); "
                                      "only run-control flags may change.")
        changed = [f.name for f in dataclasses.fields(Config)
                   if f.name not in RUN_CONTROL_FIELDS and getattr(config, f.name) != getattr(stored, f.name)]
        if changed:
            raise ConfigError(f"--resume continues a run with its own config; cannot change {', '.join(changed)} "
                              f"(allowed: {', '.join(RUN_CONTROL_FIELDS)})")
        return _check(config, known.resume, resume=True), True, known.dry_run
    preset = known.preset or "classic-fast"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    config = _parse(rest, preset_config(preset), description(preset))
    return _check(config, None if known.dry_run else config.out), False, known.dry_run


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        config, resume, dry_run = parse_args(argv)
        from purejax_ad.run import run

        summary = run(config, resume=resume, dry_run=dry_run)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Stopped as e:  # a signal while compiling (purejax_ad.run.run): nothing trained or written
        kept = f"the run in {config.out} is unchanged" if resume else "nothing was trained or written"
        print(f"stopped ({e}) during compilation; {kept}", file=sys.stderr)
        return EXIT_STOPPED
    if dry_run:
        return EXIT_OK
    from purejax_ad.outputs import json_text

    print(json_text({k: summary[k] for k in ("env", "algo", "num_seeds", "total_timesteps", "complete",
                                             "final_return_mean", "final_return_se", "final_eval_per_layer",
                                             "env_steps_per_s")}))
    if summary["num_configs"] > 1:
        for c in summary["configs"]:
            values = ", ".join(f"{k}={v:g}" for k, v in c.items() if k in dict(config.sweep))
            print(f"config {c['config']} ({values}): final return {c['final_return_mean']:.2f} "
                  f"± {c['final_return_se']:.2f}")
    out = summary["out_dir"]
    print(f"results written to {out}/ (summary.json, metrics.csv, eval.csv, learning_curve.png)")
    reason = summary["stop_reason"]
    if reason is None:
        return EXIT_OK
    where = (f"the last good checkpoint is at env step {summary['last_checkpoint']}; resume with: "
             f"{summary['resume_command']}") if summary["last_checkpoint"] is not None else "no checkpoint was written"
    if reason == "nonfinite":
        print(f"error: non-finite loss or parameters: {summary['fault']}; {where}", file=sys.stderr)
        return EXIT_NONFINITE
    print(f"stopped early ({reason}) at env step {summary['total_timesteps']} per seed; {where}", file=sys.stderr)
    return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
