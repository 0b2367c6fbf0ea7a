"""Crawler tests run against the replay Hub of tests/hub."""

from tests.hub.conftest import hub_records, replay_hub

__all__ = ["hub_records", "replay_hub"]
