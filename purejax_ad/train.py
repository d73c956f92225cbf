"""``python -m purejax_ad.train``: the command line of :mod:`purejax_ad.cli` under its documented name.

``from purejax_ad.train import main, parse_args, split_sweeps`` imports them from :mod:`purejax_ad.cli`.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not {"-h", "--help"} & set(sys.argv[1:]):
    # one CPU device per core, and --distributed: before the imports below start JAX (gymnax creates arrays);
    # --help needs no JAX
    from purejax_ad.cpu_cores import use_cpu_cores

    use_cpu_cores()
    from purejax_ad.distributed import initialize_from_argv

    initialize_from_argv(sys.argv[1:])

from purejax_ad.cli import ONE_SHOT_FIELDS, load_run_config, main, parse_args, split_sweeps

__all__ = ["ONE_SHOT_FIELDS", "load_run_config", "main", "parse_args", "split_sweeps"]

if __name__ == "__main__":
    sys.exit(main())
