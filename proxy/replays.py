"""Remembered answers: a repeat of a request the proxy answered before, sent without deciding it.

A deployment never changes, so the answer to one request (host, method, path, query and the
headers `respond` reads: its `MemoKey`) is the same for as long as the host names that
deployment. The first answer is kept as its encoded headers plus where its body lives in the
object cache; a repeat skips routing, the rules and header building. Only the alias lookup
runs each time, so a moved alias is still honoured at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from proxy.cache import ObjectCache
from proxy.lookup import Lookup
from proxy.memo_keys import MemoKey
from proxy.metrics import Sent
from proxy.open_files import SENDFILE_MIN_BYTES, OpenFiles
from proxy.protection import Gate
from proxy.sending import Message
from proxy.serve import ProxyResponse
from proxy.target import Target
from proxy.wire import header_block

MAX_REPLAYS = 8192
"""Remembered answers per process (headers and a cache key each, no bodies of files)."""
MAX_REPLAY_KEY = 1024
"""Requests whose path, query and read headers are longer are answered but not remembered."""

WireAnswer = tuple[int, bytes, bytes, int | None]
"""What `ReplayingProtocol` writes: the status, the header lines, the body, and a descriptor of
the file the whole body is (`OpenFiles`), or None: the body is then written from memory."""


@dataclass(frozen=True, slots=True)
class Replay:
    target: Target
    """What the host named when the answer was decided (`Lookup` keeps one object per alias)."""
    start: Message
    """The `http.response.start` message, built once: ASGI servers read it, never change it."""
    body: bytes
    """The body itself when it is not a file (`source` is then `""`)."""
    source: str
    """Storage key of the file the body is, to be found in the object cache."""
    span: tuple[int, int] | None
    head: bytes | None
    """`start`'s headers as HTTP/1.1 lines (`proxy.wire`); None: only the app sends it."""


class Replays:
    """The remembered answers of one process, least recently replayed forgotten first."""

    def __init__(
        self, lookup: Lookup, gate: Gate, cache: ObjectCache, sent: Sent, files: OpenFiles
    ) -> None:
        self._lookup = lookup
        self._gate = gate
        self._cache = cache
        self._sent = sent
        self._files = files
        self._memo: OrderedDict[MemoKey, Replay] = OrderedDict()

    def find(
        self, memo_key: MemoKey, headers: Iterable[tuple[bytes, bytes]], *, wire: bool
    ) -> tuple[Replay, bytes] | None:
        """The remembered answer to this request and its body, or None (`handle` it then).

        `wire`: only an answer whose headers are encoded (`Replay.head`) will do."""
        replay = self._memo.get(memo_key)
        # The alias lookup runs on every request, so a moved alias is honoured at once: a
        # remembered answer is only good while the host still names the same `Target`.
        # (Latin-1 never fails; `Lookup` strips, folds case and drops the port itself.)
        if replay is None or self._lookup.peek(memo_key[0].decode("latin-1")) is not replay.target:
            return None
        if wire and replay.head is None:
            return None
        if replay.target.protected and not self._gate.cookie_ok(headers, replay.target):
            return None  # `handle` redirects, or takes the bypass secret
        body = replay.body if not replay.source else self._cache.get(replay.source)
        if body is None:
            return None
        self._memo.move_to_end(memo_key)
        if replay.span is not None:
            body = body[replay.span[0] : replay.span[1]]
        self._sent.answered(replay.start["status"], len(body))
        return replay, body

    def wire(self, memo_key: MemoKey, headers: Iterable[tuple[bytes, bytes]]) -> WireAnswer | None:
        """`find` for `ReplayingProtocol`, with the descriptor of a large whole file."""
        found = self.find(memo_key, headers, wire=True)
        if found is None:
            return None
        replay, body = found
        fd = None
        if replay.source and replay.span is None and len(body) >= SENDFILE_MIN_BYTES:
            fd = self._files.get(replay.source, len(body))
        return replay.start["status"], replay.head or b"", body, fd

    def remember(
        self, memo_key: MemoKey, target: Target, method: str, response: ProxyResponse
    ) -> str:
        """Keep `response` as the answer to `memo_key` (unless the request is too long to).

        Returns the storage key of a file worth opening for sendfile (`OpenFiles.add`, once
        the answer is sent), or `""`."""
        if sum(map(len, memo_key)) > MAX_REPLAY_KEY:
            return ""
        if response.source and method != "HEAD":
            source, body = target.prefix + response.source, b""
        else:
            # Not a file (a redirect, a 304, the branded 404) or HEAD: the body is small.
            source, body = "", response.body if method != "HEAD" else b""
        headers = [(name.encode(), value.encode()) for name, value in response.headers]
        start = {"type": "http.response.start", "status": response.status, "headers": headers}
        head = header_block(response.status, headers)
        self._memo[memo_key] = Replay(target, start, body, source, response.span, head)
        if len(self._memo) > MAX_REPLAYS:
            self._memo.popitem(last=False)
        whole = response.span is None and len(response.body) >= SENDFILE_MIN_BYTES
        return source if source and whole and head is not None else ""

    def __iter__(self) -> Iterator[MemoKey]:
        """The remembered requests, least recently replayed first."""
        return iter(self._memo)

    def __len__(self) -> int:
        return len(self._memo)
