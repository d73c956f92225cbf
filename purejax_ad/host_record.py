"""The host loop's record of a run, saved as JSON next to the train state in every checkpoint.

:class:`HostRecord` is what :mod:`purejax_ad.run` keeps between chunks (rows written so far, evaluation
counter, timings, dropped seeds, wave position) and what a resume continues from. Its JSON form carries
``version`` (:data:`HOST_RECORD_VERSION`); a record without one is the plain dict of earlier versions
of purejax_ad (version 0) and is converted on reading.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from purejax_ad.config import ConfigError

#: Version of the host record written into checkpoints (0: the unversioned dict read from older checkpoints).
HOST_RECORD_VERSION = 1
#: Version of the replay layout in checkpoints (2: the compact buffer of :mod:`purejax_ad.replay`).
REPLAY_LAYOUT = 2


@dataclass
class HostRecord:
    """Mutable record of the host loop (one per run directory).

    ``env_steps`` (per seed) and ``n_evals`` count inside the current ``wave`` (0-based) of
    ``wave_size`` runs; ``metric_rows`` / ``eval_rows`` are every CSV row written so far (dicts);
    ``last_eval`` maps a run index (as a string) to its newest per-layer evaluation returns;
    ``diverged`` maps a run index (string) to ``{"layers": [...], "env_steps": int}``; ``train_s`` /
    ``eval_s`` are wall-clock seconds; ``resumed_at`` lists the env steps each resume started from;
    ``checkpoint_replay`` says whether the checkpoint holding this record includes the replay buffer.
    """

    env_steps: int = 0
    n_evals: int = 0
    metric_rows: list = field(default_factory=list)
    eval_rows: list = field(default_factory=list)
    last_eval: dict = field(default_factory=dict)
    train_s: float = 0.0
    eval_s: float = 0.0
    diverged: dict = field(default_factory=dict)
    resumed_at: list = field(default_factory=list)
    checkpoint_replay: bool = True
    wave: int = 0
    replay_layout: int | None = REPLAY_LAYOUT
    wave_size: int | None = None
    version: int = HOST_RECORD_VERSION

    def training_rates(self, config) -> tuple[float, float]:
        """``(per seed, aggregate)`` env steps per second of training so far: a seed's env steps done (every
        wave's) per second of ``train_s`` (warm-up and chunks; evaluations and checkpoints excluded), and that
        times the runs trained at once, ``min(wave_size, runs)`` (``summary.json``'s ``env_steps_per_s``)."""
        per_seed = (self.wave * config.effective_total_timesteps + self.env_steps) / max(self.train_s, 1e-9)
        return per_seed, per_seed * min(self.wave_size or 1, config.num_configs * config.num_seeds)

    def to_json(self) -> dict:
        """The JSON-ready dict saved in a checkpoint (the same objects, not copies)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, record: dict, source: str = "checkpoint") -> HostRecord:
        """The record saved in a checkpoint, of this version or of version 0 (the older plain dict).

        Version 0 records may lack ``wave`` (one wave: 0), ``wave_size`` (``None``: the caller fills it
        in), ``replay_layout`` (``None``) and may hold ``last_eval`` as a per-run list.

        Raises:
          purejax_ad.config.ConfigError: the record's version is not one this code reads (named after
            ``source``), or it is not a dict.
        """
        if not isinstance(record, dict):
            raise ConfigError(f"{source}: its checkpoint's host record is not a JSON object")
        version = record.get("version", 0)
        if version == HOST_RECORD_VERSION:
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in record.items() if k in names})
        if version != 0:
            raise ConfigError(f"{source}: its checkpoint's host record has version {version!r}, but this purejax_ad "
                              f"reads versions 0 to {HOST_RECORD_VERSION} (written by a newer purejax_ad?); resume it "
                              "with the version that wrote it or start a new run")
        last_eval = record.get("last_eval")
        if not isinstance(last_eval, dict):
            last_eval = {str(r): v for r, v in enumerate(last_eval or [])}
        return cls(env_steps=record["env_steps"], n_evals=record["n_evals"], metric_rows=record["metric_rows"],
                   eval_rows=record["eval_rows"], last_eval=last_eval, train_s=record["train_s"],
                   eval_s=record["eval_s"], diverged=record["diverged"], resumed_at=record["resumed_at"],
                   checkpoint_replay=record.get("checkpoint_replay", True), wave=record.get("wave", 0),
                   replay_layout=record.get("replay_layout"), wave_size=record.get("wave_size"))
