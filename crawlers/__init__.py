"""Crawlers: read Hub metadata, model cards, dumps and local checkpoints into records (no analysis)."""
