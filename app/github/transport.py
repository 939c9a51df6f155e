"""One httpx connection pool under githubkit's short-lived clients, closed only on purpose."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from app.github.waits import normalised_retry_after


class SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool under githubkit's short-lived httpx clients.

    Without an `async with` block githubkit opens an httpx client per request and closes it
    afterwards, and an `async with` block would only hold in the task that entered it. So every
    client gets this wrapper, whose `aclose()` leaves the pool open; `GitHubAppClient.aclose()`
    closes it for real.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        normalise_wait_headers(response.headers)
        return response

    async def aclose(self) -> None:
        pass

    async def close_pool(self) -> None:
        await self._inner.aclose()


def normalise_wait_headers(headers: httpx.Headers) -> None:
    """Put the wait headers in the one form githubkit reads, so that it never raises on them.

    githubkit reads `Retry-After` and `x-ratelimit-reset` with `int()`: an HTTP-date
    `Retry-After` (which RFC 9110 allows, and proxies in front of GitHub Enterprise send) would
    escape it as a bare ValueError. A date becomes seconds; a value that means nothing is dropped.
    """
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        seconds = normalised_retry_after(retry_after, datetime.now(UTC))
        if seconds is None:
            del headers["retry-after"]
        else:
            headers["retry-after"] = seconds
    reset = headers.get("x-ratelimit-reset")
    if reset is not None and not reset.strip().isdigit():
        del headers["x-ratelimit-reset"]
