from __future__ import annotations

from atlas.retry import RETRY_STATUS, RetryConfig, retry_after


def test_backoff_doubles_honours_retry_after_and_stays_under_the_cap() -> None:
    retry = RetryConfig(base_wait=0.5, max_wait=3.0)
    assert [retry.wait(a) for a in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert retry.wait(0, after=2.5) == 2.5 and retry.wait(0, after=120) == 3.0
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None  # a date: backoff decides
    assert retry_after({}) is None
    assert {429, 503} <= RETRY_STATUS and 404 not in RETRY_STATUS
