"""Command line: ``python -m purejax_ad.train [--preset NAME] [--env ID] [--num-seeds N] [...]``.

``--preset`` picks the starting values (default ``classic-fast``); every other flag overrides one
field of :class:`purejax_ad.config.Config` (``--help`` lists them with the preset's defaults).
Invalid input exits with status 2 and a one-line error before anything is compiled.
"""

from __future__ import annotations

import argparse
import json
import sys

import tyro

from purejax_ad.config import PRESETS, Config, ConfigError, check, preset_config


def parse_config(argv: list[str]) -> Config:
    """Parse CLI arguments into a checked :class:`Config`.

    Raises:
      ConfigError: unknown preset or invalid values.
      SystemExit: tyro's own parse errors / ``--help``.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="classic-fast")
    known, rest = pre.parse_known_args(argv)
    if known.preset not in PRESETS:
        raise ConfigError(f"unknown preset {known.preset!r}; valid presets: {', '.join(PRESETS)}")
    default = preset_config(known.preset)
    config = tyro.cli(Config, default=default, args=rest,
                      description=f"Train AD on gymnax. Presets: {', '.join(PRESETS)} (defaults shown: {known.preset}).")
    return check(config)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = parse_config(argv)
        from purejax_ad.run import run

        summary = run(config)
    except (ConfigError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("env", "algo", "num_seeds", "total_timesteps", "final_return_mean",
                                              "final_return_se", "final_eval_per_layer", "env_steps_per_s")}))
    print(f"results written to {summary['out_dir']}/ (summary.json, metrics.csv, eval.csv, learning_curve.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
