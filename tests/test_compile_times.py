"""The compile-time history behind the CLI's "compiling ..." line (purejax_ad/compile_times.py)."""

from __future__ import annotations

import json

from purejax_ad import compile_times
from purejax_ad.config import Config


def test_estimate_is_the_median_of_the_newest_compiles_of_the_program_on_the_device(tmp_path):
    path = tmp_path / "times.json"
    config = Config()
    program = compile_times.program_key(config)
    assert compile_times.estimate(compile_times.load(path), "cpu x1", program) is None  # no history yet
    for seconds in (100, 1, 2, 3, 4, 50):  # the oldest (100) is past the newest RECENT = 5
        compile_times.record("cpu x1", program, seconds, path)
    compile_times.record("cpu x1", "other program", 7, path)
    compile_times.record("gpu x1", program, 9, path)
    records = compile_times.load(path)
    assert len(records) == 8 and json.loads(path.read_text()) == records
    found = compile_times.estimate(records, "cpu x1", program)
    assert found == compile_times.Estimate(3.0, 5, True)  # median of 1, 2, 3, 4, 50
    assert compile_times.estimate(records, "cpu x1", "a third program") == compile_times.Estimate(4.0, 5, False)  # 2, 3, 4, 50, 7
    line = compile_times.compiling_line(config, 4, "cpu x1", path)
    assert line.startswith("compiling ad-dqn on CartPole-v1 for 4 runs on cpu x1") and "about 3 s" in line


def test_an_unusable_history_gives_no_estimate_and_no_error(tmp_path):
    bad = tmp_path / "times.json"
    bad.write_text("{not json")
    assert compile_times.load(bad) == []
    blocked = tmp_path / "file"
    blocked.write_text("")
    compile_times.record("cpu x1", "p", 1.0, blocked / "times.json")  # parent is a file: silently skipped
    assert "no estimate" in compile_times.compiling_line(Config(), 1, "cpu x1", blocked / "times.json")


def test_the_history_path_follows_purejax_ad_compile_times(monkeypatch, tmp_path):
    monkeypatch.setenv("PUREJAX_AD_COMPILE_TIMES", str(tmp_path / "h.json"))
    assert compile_times.history_path() == tmp_path / "h.json"
    monkeypatch.delenv("PUREJAX_AD_COMPILE_TIMES")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert compile_times.history_path() == tmp_path / "cache" / "purejax_ad" / "compile_times.json"
