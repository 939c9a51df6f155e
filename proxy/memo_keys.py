"""The key a request's answer is remembered under, and the `ProxyRequest` built from it: the
host, the method, the raw path, the query and the four request headers `respond` reads."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.sending import Scope
from proxy.serve import ProxyRequest

MemoKey = tuple[bytes, str, bytes, bytes, bytes, bytes, bytes, bytes]
"""Host, method, raw path, query, Accept-Encoding, If-None-Match, Range, If-Range."""
_KEY_HEADERS = {b"host": 0, b"accept-encoding": 1, b"if-none-match": 2, b"range": 3, b"if-range": 4}
"""Where each request header `memo_key_of` reads goes in `found` (ASGI names are lower-case)."""


def request_of(
    key: str, memo_key: MemoKey, headers: Iterable[tuple[bytes, bytes]] = ()
) -> ProxyRequest:
    """What `respond` reads, from the very values the answer will be remembered under (and the
    raw `headers` when the site's rules read them: such answers are never remembered)."""
    host, method, _, query, accept_encoding, if_none_match, range_, if_range = memo_key
    # Latin-1 never fails to decode; escaping happens where a value is rendered.
    return ProxyRequest(
        method=method,
        key=key,
        query=query.decode("latin-1"),
        accept_encoding=accept_encoding.decode("latin-1"),
        if_none_match=if_none_match.decode("latin-1"),
        range=range_.decode("latin-1"),
        if_range=if_range.decode("latin-1"),
        host=host.decode("latin-1"),
        headers=tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers),
    )


def memo_key_of(scope: Scope) -> MemoKey:
    """Everything that decides an answer: the host, and all that `respond` reads."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return memo_key_from(
        scope["headers"], scope["method"], raw_path, scope.get("query_string", b"")
    )


def memo_key_from(
    headers: Iterable[tuple[bytes, bytes]], method: str, raw_path: bytes, query: bytes
) -> MemoKey:
    """`memo_key_of` from the request's parts (lower-case header names, as ASGI has them)."""
    found = [b"", b"", b"", b"", b""]
    slot = _KEY_HEADERS.get
    # One pass over the raw headers, the last of a repeated one winning: cheaper than
    # building a dict of them all and then asking it five times.
    for name, value in headers:
        index = slot(name)
        if index is not None:
            found[index] = value
    return (found[0], method, raw_path, query, found[1], found[2], found[3], found[4])
