"""Where a `next` parameter may lead: a path on the same site, never another host.

The dashboard's sign-in, "Sign in with GitHub" and the proxy's preview hand-off all send a
browser on to a `next` it was given; each keeps only what this allows.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_LENGTH = 2000


def local_path(raw: str | None) -> str:
    """`raw` when it is a path on this site, else `/`: never another host, in any spelling
    (`//host`, `/\\host`, a scheme, control characters)."""
    value = (raw or "").strip()
    parts = urlsplit(value)
    if (
        not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
        or len(value) > MAX_LENGTH
    ):
        return "/"
    return value
