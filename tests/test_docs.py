"""The README documents every command, every view and macro of the SQL contract, and every kinship metric."""

from __future__ import annotations

import re
from pathlib import Path

from atlas.cli import app
from atlas.db import schema_sql

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_command_is_in_the_readme() -> None:
    names = [c.name for c in app.registered_commands]
    assert len(names) >= 10
    missing = [n for n in names if f"hubatlas {n}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_every_view_and_macro_is_in_the_readme() -> None:
    defined = re.findall(r"CREATE OR REPLACE (?:VIEW|MACRO) (\w+)", schema_sql())
    assert {"lineage", "families", "descendants", "ancestors", "family", "siblings"} <= set(defined)
    missing = [n for n in defined if f"`{n}" not in README]
    assert not missing, f"views/macros missing from README.md: {missing}"


def test_every_kinship_metric_is_in_the_readme() -> None:
    from analysis.kinship import KINSHIP_METRICS

    missing = [m for m in KINSHIP_METRICS if f"`{m}`" not in README]
    assert not missing, f"kinship metrics missing from README.md: {missing}"


def test_every_command_has_an_example() -> None:
    without = [c.name for c in app.registered_commands if "Example:" not in (c.callback.__doc__ or "")]
    assert not without, f"commands whose --help has no example: {without}"
