"""A deployment's manifest read from storage: in one request, never more than
`MAX_MANIFEST_BYTES` (it is the build's output, so its size is the build's to choose)."""

from __future__ import annotations

import contextlib

from app.storage import Storage
from builder.spec import MANIFEST

MAX_MANIFEST_BYTES = 64 << 20
"""A larger manifest is not read (20,000 files take about 6 MB)."""


class ManifestTooLarge(Exception):
    """The manifest is larger than `MAX_MANIFEST_BYTES`: none of it is kept."""


async def read_manifest(storage: Storage, prefix: str) -> bytes:
    """The bytes of the manifest under `prefix`, read once (no size asked first); raises
    `ObjectNotFound` or `StorageError` as storage does, or `ManifestTooLarge`."""
    limit = MAX_MANIFEST_BYTES
    pieces: list[bytes] = []
    taken = 0
    async with contextlib.aclosing(storage.stream(prefix + MANIFEST, 0, limit + 1)) as stream:
        async for piece in stream:
            pieces.append(piece)
            taken += len(piece)
    if taken > limit:
        raise ManifestTooLarge(f"the manifest is larger than {limit >> 20} MiB")
    return b"".join(pieces)
