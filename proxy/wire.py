"""A remembered answer's headers as HTTP/1.1 bytes, encoded once (`ReplayingProtocol`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_NAME_REFUSED = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_VALUE_REFUSED = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
"""The bytes uvicorn refuses in a header name and value (its `HEADER_RE`, `HEADER_VALUE_RE`):
an answer it would refuse is never written by the protocol either."""
BODILESS = frozenset({204, 304})
"""Statuses uvicorn sends without a body, and so without chunking when no length is given."""


def header_block(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """`name: value` lines, names lower-case as uvicorn writes them; None when uvicorn would
    treat the answer specially: a refused byte, no Content-Length where a body may follow (it
    would chunk), or a Connection or Transfer-Encoding header (they change the connection)."""
    lines = []
    sized = status in BODILESS
    for name, value in headers:
        name = name.lower()
        if _NAME_REFUSED.search(name) or _VALUE_REFUSED.search(value):
            return None
        if name in (b"connection", b"transfer-encoding"):
            return None
        sized = sized or name == b"content-length"
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines) if sized else None
