"""Config checks: one message per ``Literal`` field holding a value outside its choices."""

from __future__ import annotations

import pytest

from purejax_ad.checks import check, choice_fields, validate
from purejax_ad.config import Config, ConfigError


def test_every_literal_field_is_a_choice_and_only_those():
    fields = choice_fields()
    assert fields["td_loss"] == ("mse", "huber") and fields["on_nonfinite"] == ("stop", "drop-seed")
    assert "seeds_per_wave" not in fields and "algo" not in fields  # a union with int; a table row


@pytest.mark.parametrize("name, value, message", [
    ("td_loss", "x", "td_loss must be 'mse' or 'huber', got 'x'"),
    ("cell", "gru", "cell must be 'auto', 'attention', 'mlp' or 'arq', got 'gru'"),
    ("ndpg_critic", "quadratic", "ndpg_critic must be 'linear' or 'compatible', got 'quadratic'"),
    ("matmul_dtype", "float16", "matmul_dtype must be 'float32' or 'bfloat16', got 'float16'"),
])
def test_a_value_outside_the_choices_is_one_problem(name, value, message):
    assert validate(Config(**{name: value})) == [message]
    with pytest.raises(ConfigError, match="invalid config: " + message.replace("(", r"\(")):
        check(Config(**{name: value}))


def test_the_defaults_are_valid():
    assert validate(Config()) == []
