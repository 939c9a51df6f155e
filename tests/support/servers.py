"""ASGI apps served by uvicorn in a thread of the test process, on a socket bound beforehand.

For behaviour only a real network shows (a client that stops reading, close codes as a real
client sees them, a process talking to the app). The socket is bound before the server
starts, so no other process can take the port in between (see `tests.support.ports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn

from tests.support.ports import LOOPBACK, bound_socket, port_of
from tests.support.waiting import WAIT_S, wait_until

T = TypeVar("T")


@dataclass
class Serving:
    """A running server: where it listens, and its event loop (the app's state lives there)."""

    loop: asyncio.AbstractEventLoop
    port: int
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def call(self, make: Callable[[], Awaitable[T]], within: float = WAIT_S) -> T:
        """Run a coroutine on the server's own loop and return its result."""

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(within)


@contextlib.contextmanager
def uvicorn_in_thread(
    app: Any, listener: socket.socket | None = None, **options: Any
) -> Iterator[Serving]:
    """Serve `app` (lifespan on) until the block ends, on `listener` when given (bound
    beforehand, when the app must know its own URL), with uvicorn's other `options`."""
    listener = listener or bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", **options))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[listener]),), daemon=True
    )
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn starting")
        assert thread.is_alive(), "uvicorn stopped while starting"
        yield Serving(loop, port_of(listener))
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        loop.close()
        listener.close()
