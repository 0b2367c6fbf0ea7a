"""Retrying HTTP requests to the Hub: which answers deserve another try, and how long to wait first.

Shared by the crawler (API pages, card files) and the weight sampler (range reads), so both back off alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryConfig:
    max_retries: int = 5  # retries after the first attempt, per request
    base_wait: float = 1.0  # seconds before the first retry; doubles each time
    max_wait: float = 60.0  # cap on one wait, Retry-After included
    timeout: float = 30.0  # seconds per request

    def wait(self, attempt: int, after: float | None = None) -> float:
        """Seconds before the retry that follows failed attempt `attempt` (0-based): the server's
        `Retry-After` when it gave one, else exponential backoff; never more than `max_wait`."""
        return min(self.base_wait * 2**attempt if after is None else after, self.max_wait)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """A `Retry-After` header in seconds, or None (absent, or an HTTP-date: backoff decides)."""
    value = headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
