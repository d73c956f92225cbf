"""JSON outputs are strict JSON: NaN and infinities are written as null (no training)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from purejax_ad.outputs import RunWriter, json_text


def strict_loads(text):
    def refuse(constant):
        raise ValueError(f"non-JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value, written", [
    (math.nan, None), (math.inf, None), (-math.inf, None), (np.float32("nan"), None), (np.float64("inf"), None),
    (np.float32(0.5), 0.5), (np.int64(3), 3), (np.array([1.0, np.nan]), [1.0, None]), ((2.0, -math.inf), [2.0, None]),
    ({"a": [{"b": math.nan}]}, {"a": [{"b": None}]}), (None, None), ("nan", "nan"), (True, True),
])
def test_non_finite_numbers_become_null(value, written):
    assert strict_loads(json_text({"x": value})) == {"x": written}


def test_write_json_writes_strict_json(tmp_path):
    writer = RunWriter(tmp_path, num_layers=1, num_seeds=1)
    writer.write_json("summary.json", {"final_return_mean": np.float64("nan"), "final_eval_per_layer": [np.nan, 2.0]})
    writer.close()
    summary = strict_loads((tmp_path / "summary.json").read_text())
    assert summary == {"final_return_mean": None, "final_eval_per_layer": [None, 2.0]}
    with pytest.raises(TypeError):
        json_text({"x": object()})
