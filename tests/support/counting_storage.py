"""A `Storage` wrapper that counts what is read through it: whole objects, streamed bytes, sizes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from pathlib import Path

from app.storage import Storage


class CountingStorage:
    """Delegates to `inner`; counts the bytes each read took from the store."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.whole: list[str] = []
        """Keys read whole (`get`)."""
        self.whole_bytes = 0
        self.streamed = 0
        """Bytes taken by `stream`, over all calls."""
        self.largest_piece = 0
        self.sized: list[str] = []

    def __getattr__(self, name: str) -> object:
        # put, list, delete…: not counted, passed through.
        return getattr(self.inner, name)

    async def get(self, key: str) -> bytes:
        data = await self.inner.get(key)
        self.whole.append(key)
        self.whole_bytes += len(data)
        return data

    async def size(self, key: str) -> int:
        self.sized.append(key)
        return await self.inner.size(key)

    async def stream(
        self, key: str, start: int = 0, stop: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        # Closed with this one, as the proxy closes what it streams: `async for` would not.
        async with contextlib.aclosing(self.inner.stream(key, start, stop)) as chunks:
            async for chunk in chunks:
                self.streamed += len(chunk)
                self.largest_piece = max(self.largest_piece, len(chunk))
                yield chunk

    async def path_of(self, key: str) -> Path | None:
        return await self.inner.path_of(key)

    @property
    def bytes_read(self) -> int:
        """Every byte taken from the store, whole or streamed."""
        return self.whole_bytes + self.streamed

    def reset(self) -> None:
        self.whole.clear()
        self.sized.clear()
        self.whole_bytes = self.streamed = self.largest_piece = 0
