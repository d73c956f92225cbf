"""The host record saved in checkpoints: versioned JSON, older plain dicts converted, unknown versions refused."""

from __future__ import annotations

import pytest

from purejax_ad.config import ConfigError
from purejax_ad.host_record import HOST_RECORD_VERSION, REPLAY_LAYOUT, HostRecord

# The plain dict that checkpoints written before the versioned record hold.
OLD = {"env_steps": 7000, "n_evals": 2, "metric_rows": [{"seed": 0}], "eval_rows": [], "last_eval": {"0": [1.0]},
       "train_s": 1.5, "eval_s": 0.5, "diverged": {}, "resumed_at": [], "checkpoint_replay": True, "wave": 0,
       "replay_layout": REPLAY_LAYOUT, "wave_size": 2}


def test_round_trip_keeps_every_field_and_the_version():
    host = HostRecord(env_steps=5, wave_size=4, last_eval={"1": [2.0]})
    record = host.to_json()
    assert record["version"] == HOST_RECORD_VERSION
    assert list(record)[:13] == list(OLD)  # the older keys, in their order, then the version
    assert HostRecord.from_json(record) == host


def test_an_old_plain_dict_is_converted():
    host = HostRecord.from_json(dict(OLD))
    assert (host.env_steps, host.wave_size, host.metric_rows, host.version) == (7000, 2, [{"seed": 0}],
                                                                               HOST_RECORD_VERSION)


def test_an_old_dict_from_before_seed_waves_gets_one_wave_and_a_dict_of_evaluations():
    old = {k: v for k, v in OLD.items() if k not in ("wave", "wave_size")}
    host = HostRecord.from_json({**old, "last_eval": [[1.0], [2.0]]})
    assert (host.wave, host.wave_size, host.last_eval) == (0, None, {"0": [1.0], "1": [2.0]})
    assert HostRecord.from_json({k: v for k, v in old.items() if k != "replay_layout"}).replay_layout is None


@pytest.mark.parametrize("version", [HOST_RECORD_VERSION + 1, "2", None])
def test_an_unknown_version_is_refused(version):
    with pytest.raises(ConfigError, match=r"--resume runs/x: its checkpoint's host record has version"):
        HostRecord.from_json({**OLD, "version": version}, "--resume runs/x")
