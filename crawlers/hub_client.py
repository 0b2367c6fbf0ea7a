"""Talking to the Hub: raw wire JSON and files through huggingface_hub's HTTP session, with retries.

The crawler needs what `HfApi.list_models` hides: the wire JSON (for `bundle_from_info`) and each page's
`Link` cursor (to resume an interrupted listing where it stopped). So it requests the same endpoints with
the same parameters, through huggingface_hub's shared session, headers (token, user agent) and error
mapping. Retries happen here only, once: `get_session()` does not retry by itself (`http_backoff` would,
and is not used), so a 429 or 5xx is retried exactly by this module's loop, with `atlas.retry`'s backoff
(the weight sampler's too), honouring `Retry-After`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from atlas.retry import RETRY_STATUS, RetryConfig, retry_after

__all__ = ["RETRY_STATUS", "FetchError", "HubClient", "RetryConfig"]


class FetchError(RuntimeError):
    """A request that failed for good (after retries), with a one-line message naming the URL."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class HubClient:
    """The Hub endpoints the crawler uses, counting every HTTP request it makes."""

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | bool | None = None,
        retry: RetryConfig = RetryConfig(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint, token=token, library_name="hubatlas")
        self.endpoint = self.api.endpoint.rstrip("/")
        self.retry = retry
        self.requests = 0
        self.retries = 0
        self._sleep = sleep

    def list_page(
        self, url: str | None, params: Sequence[tuple[str, Any]] = ()
    ) -> tuple[list[dict], str | None]:
        """One page of `GET /api/models`: its items and the absolute URL of the next page (or None)."""
        # No params at all for a cursor URL: an empty list would replace the query it carries.
        response = self._get(url or f"{self.endpoint}/api/models", params=list(params) or None)
        items = _json(response)
        if not isinstance(items, list):
            raise FetchError(f"{response.url}: expected a JSON list of models", transient=False)
        return items, response.links.get("next", {}).get("url")

    def model_info(self, repo_id: str, *, expand: Sequence[str] = ()) -> dict[str, Any]:
        """`GET /api/models/{id}` as wire JSON."""
        url = f"{self.endpoint}/api/models/{quote(repo_id, safe='/')}"
        info = _json(self._get(url, params=[("expand", e) for e in expand]))
        if not isinstance(info, dict):
            raise FetchError(f"{url}: expected a JSON object", transient=False)
        return info

    def read_file(self, repo_id: str, path: str, *, revision: str = "main") -> bytes | None:
        """A repo file's bytes through `resolve`, or None when the repo has no such file."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError

        url = hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)
        try:
            return self._get(url).content
        except FetchError as e:
            if isinstance(e.__cause__, EntryNotFoundError) or e.status == 404:
                return None
            raise

    def _get(self, url: str, *, params: list[tuple[str, Any]] | None = None) -> Any:
        try:
            import httpx2
        except ImportError:  # huggingface_hub before its httpx2 transport
            import httpx as httpx2
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        headers = build_hf_headers(token=self.api.token, library_name="hubatlas")
        for attempt in range(self.retry.max_retries + 1):
            last = attempt == self.retry.max_retries
            self.requests += 1
            try:
                response = get_session().get(url, params=params, headers=headers, timeout=self.retry.timeout)
                if response.status_code in RETRY_STATUS and not last:
                    self._pause(self.retry.wait(attempt, retry_after(response.headers)))
                    continue
                hf_raise_for_status(response)
                return response
            except HfHubHTTPError as e:
                status = e.response.status_code if e.response is not None else None
                raise FetchError(
                    _one_line(e), status=status, transient=status in RETRY_STATUS if status else True
                ) from e
            except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as e:
                if last:
                    raise FetchError(f"{url}: {type(e).__name__}: {_one_line(e)}") from e
                self._pause(self.retry.wait(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, seconds: float) -> None:
        self.retries += 1
        self._sleep(seconds)


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise FetchError(f"{response.url}: invalid JSON ({e})") from e


def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(e).__name__
