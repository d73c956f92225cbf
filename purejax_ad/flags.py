"""The command line's view of :class:`~purejax_ad.config.Config`: one flag per field, in the sections of
:data:`~purejax_ad.config.HELP_SECTIONS`, each with a one-line help (the first line of the field's docstring).

tyro puts the flags of a nested dataclass under a heading of their own, so :func:`cli_type` builds one
small dataclass per section, marked ``tyro.conf.OmitArgPrefixes`` so that the flags keep the field names
(``--learning-rate``, not ``--optimisation.learning-rate``); :func:`to_config` turns the parsed sections
back into the flat ``Config``. The flags that :mod:`purejax_ad.cli` reads before tyro (:data:`EXTRA_FLAGS`:
``--resume``, ``--dry-run``) are fields of the ``run`` section too, so that ``--help`` lists them; tyro
never sees them on a real command line.

This module imports nothing that imports JAX: ``python -m purejax_ad.train --help`` prints in about a second.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from typing import Annotated

import tyro

from purejax_ad.config import HELP_SECTIONS, Config

#: Flags read by :func:`purejax_ad.cli.parse_args` before tyro: ``field -> (type, default, help)``; shown in
#: the ``run`` section.
EXTRA_FLAGS: dict[str, tuple[object, object, str]] = {
    "resume": (Annotated[str | None, tyro.conf.arg(metavar="RUN_DIR")], None,
               "Continue the interrupted run in RUN_DIR with its stored config (only run-control flags may change)."),
    "dry_run": (Annotated[bool, tyro.conf.FlagCreatePairsOff], False,
                "Print the pre-flight plan (memory, FLOPs, a lower bound on the wall time) and exit; trains nothing."),
}
#: The section of :class:`Config` fields missing from :data:`HELP_SECTIONS` (still flags, listed last).
OTHER_SECTION = "other"


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``x`` and :role:`~x` -> x."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def field_help(cls: type = Config) -> dict[str, str]:
    """``{field: its one-line help}``: the first line of each field's attribute docstring in ``cls``'s
    source, markup removed (``""`` for a field without a docstring)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = _plain(nxt.value.value.strip().splitlines()[0].strip())
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


def sections() -> dict[str, tuple[str, ...]]:
    """:data:`HELP_SECTIONS` with the ``run`` section led by :data:`EXTRA_FLAGS` and, if some flag field is
    in no section, an :data:`OTHER_SECTION` with those fields."""
    listed = {name for names in HELP_SECTIONS.values() for name in names}
    other = tuple(f.name for f in dataclasses.fields(Config) if f.name not in listed and f.name != "sweep")
    out = {title: (*EXTRA_FLAGS, *names) if title == "run" else names for title, names in HELP_SECTIONS.items()}
    return {**out, OTHER_SECTION: other} if other else out


def cli_type(help_overrides: dict[str, str] | None = None) -> type:
    """The nested dataclass that tyro parses: a field per section, each a dataclass of that section's flags
    (same names, types and help as :class:`Config`; booleans take a value, ``--double-q false``).

    Args:
      help_overrides: ``{field: help}`` replacing the docstring line (lists only known at run time).
    """
    hints = typing.get_type_hints(Config, include_extras=True)
    helps = {**field_help(), **{k: v for k, (_, _, v) in EXTRA_FLAGS.items()}, **(help_overrides or {})}
    groups = []
    for title, names in sections().items():
        fields = []
        for name in names:
            kind = EXTRA_FLAGS[name][0] if name in EXTRA_FLAGS else hints[name]
            markers = (tyro.conf.FlagConversionOff,) if kind is bool else ()
            fields.append((name, Annotated[kind, *markers, tyro.conf.arg(help=helps[name] or None)]))
        group = dataclasses.make_dataclass(title, fields, frozen=True)
        groups.append((title, Annotated[group, tyro.conf.OmitArgPrefixes]))
    return dataclasses.make_dataclass("Flags", groups, frozen=True)


def _groups(flags_type: type) -> dict[str, type]:
    """``{section: its dataclass}`` of a :func:`cli_type`."""
    return {f.name: typing.get_args(f.type)[0] for f in dataclasses.fields(flags_type)}


def cli_default(flags_type: type, config: Config):
    """The ``flags_type`` instance holding ``config``'s values (and the :data:`EXTRA_FLAGS` defaults)."""
    values = {**{k: default for k, (_, default, _) in EXTRA_FLAGS.items()},
              **{f.name: getattr(config, f.name) for f in dataclasses.fields(Config)}}
    return flags_type(**{title: group(**{g.name: values[g.name] for g in dataclasses.fields(group)})
                         for title, group in _groups(flags_type).items()})


def to_config(flags, base: Config) -> Config:
    """``base`` with every flag field of the parsed ``flags`` (the :data:`EXTRA_FLAGS` are dropped)."""
    values = {g.name: getattr(getattr(flags, title), g.name)
              for title, group in _groups(type(flags)).items() for g in dataclasses.fields(group)}
    return dataclasses.replace(base, **{k: v for k, v in values.items() if k not in EXTRA_FLAGS})


def parse_flags(args: list[str], default: Config, prog: str, description: str,
                help_overrides: dict[str, str] | None = None) -> Config:
    """``args`` parsed by tyro into a :class:`Config` that starts from ``default`` (``--help`` prints the
    sectioned help with ``default``'s values and exits).

    Raises:
      SystemExit: tyro's parse errors (status 2) and ``--help`` (status 0).
    """
    flags_type = cli_type(help_overrides)
    flags = tyro.cli(flags_type, default=cli_default(flags_type, default), args=args, prog=prog,
                     description=description)
    return to_config(flags, default)
