"""One httpx connection pool under githubkit's short-lived clients, closed only on purpose."""

from __future__ import annotations

import httpx


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
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass

    async def close_pool(self) -> None:
        await self._inner.aclose()
