"""Fixtures: the replay Hub serving the real hub-trees-2025 records on a random loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub.repos import load_records
from tests.hub.server import ReplayHub


@pytest.fixture(scope="session")
def hub_records(real_data: Path) -> list[dict[str, Any]]:
    """The 1,496 real model records of hub-trees-2025 (`{"info", "readme"}` each)."""
    return load_records(real_data / "hub-trees-2025" / "models.jsonl.gz")


@pytest.fixture
def replay_hub(hub_records: list[dict[str, Any]]) -> Iterator[ReplayHub]:
    """A started replay Hub with the real records; `.url`, `.counts`, `.log`, `.add_fault(...)`."""
    with ReplayHub(records=hub_records, page_size=100) as hub:
        yield hub
