"""Hub Atlas core: schema, database access, configuration and the `hubatlas` CLI.

This package imports nothing heavy (no torch, no dash, no network) so the CLI starts fast.
"""

__version__ = "0.1.0"
