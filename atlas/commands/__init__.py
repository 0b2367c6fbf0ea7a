"""CLI command modules; each registers its commands on `atlas.cli.app` when imported."""
