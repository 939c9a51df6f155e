"""A deployment as the proxy sees it: the servable files its manifest lists, and its rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from builder.content import REVALIDATE, is_compressible
from builder.siterules import CompiledRules, RequestView, RuleError, compile_rules
from builder.siterules.compiled import VERCEL
from builder.siterules.files import HEADERS_FILE, REDIRECTS_FILE, Headers, Rules
from builder.spec import RESERVED_DIR

Reader = Callable[[str], Awaitable[bytes]]
"""Reads a file by its deployment-relative key; raises `FileNotFoundError` when it is missing."""
Sizer = Callable[[str], Awaitable[int]]
"""A file's size by its deployment-relative key, without reading it (same errors as `Reader`)."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    size: int
    sha256: str
    content_type: str
    cache_control: str
    encodings: tuple[str, ...] = ()

    @classmethod
    def from_manifest(cls, record: Mapping[str, Any]) -> FileInfo:
        return cls(
            size=int(record["size"]),
            sha256=str(record["sha256"]),
            content_type=str(record.get("content_type") or "application/octet-stream"),
            cache_control=str(record.get("cache_control") or REVALIDATE),
            encodings=tuple(str(encoding) for encoding in record.get("encodings") or ()),
        )

    @property
    def compressible(self) -> bool:
        return bool(self.encodings) or is_compressible(self.content_type)


def is_hidden(key: str) -> bool:
    """Files that configure the deployment rather than belong to it: never served."""
    return key in (REDIRECTS_FILE, HEADERS_FILE) or (key + "/").startswith(RESERVED_DIR)


class Asked(Protocol):
    """A request as the header rules read it (`proxy.serve.ProxyRequest`)."""

    @property
    def path(self) -> str: ...

    @property
    def view(self) -> RequestView:
        """Built only when asked: a site without config rules never needs it."""
        ...


@dataclass(frozen=True, slots=True)
class Site:
    """One deployment as the proxy sees it: its servable files, its rules and how to read."""

    files: Mapping[str, FileInfo]
    read: Reader
    size: Sizer
    rules: Rules = field(default_factory=Rules)
    inline_limit: int | None = None
    """Files larger than this are never read whole: their body is streamed by the edge (None:
    every file is read)."""
    config: CompiledRules | None = None
    """The rules of the repository's config file (the manifest's `rules`), if it has any."""

    @property
    def reads_headers(self) -> bool:
        """Answers depend on request headers or cookies (a `has`/`missing` rule reads them)."""
        return self.config is not None and self.config.reads_headers

    def headers_for(self, request: Asked) -> Headers:
        """`_headers`, then the config file's header rules: Vercel's replace a name, Netlify's
        join it."""
        found = self.rules.headers_for(request.path)
        if self.config is None:
            return found
        combined = {name.lower(): (name, value) for name, value in found}
        for name, value in self.config.headers_for(request.view):
            earlier = combined.get(name.lower())
            if earlier is not None and self.config.semantics != VERCEL:
                value = f"{earlier[1]}, {value}"
            combined[name.lower()] = (name, value)
        return list(combined.values())

    @classmethod
    async def load(
        cls,
        manifest: Mapping[str, Any],
        read: Reader,
        *,
        size: Sizer,
        inline_limit: int | None = None,
    ) -> Site:
        """Parse the manifest, compile its `rules` and read `_redirects`/`_headers` (the only
        reads done here)."""
        listed: Mapping[str, Any] = manifest.get("files") or {}
        texts: dict[str, str] = {}
        for name in (REDIRECTS_FILE, HEADERS_FILE):
            if name in listed:
                # A stray byte in a rules file should cost that line, not the whole site.
                texts[name] = (await read(name)).decode("utf-8", errors="replace")
        files = {
            key: FileInfo.from_manifest(record)
            for key, record in listed.items()
            if not is_hidden(key)
        }
        rules = Rules.parse(texts.get(REDIRECTS_FILE, ""), texts.get(HEADERS_FILE, ""))
        config = None
        if manifest.get("rules") is not None:
            try:
                config = compile_rules(manifest["rules"])
            except RuleError as exc:
                # The builder refuses such rules; a manifest from before it did (or written by
                # hand) loses its rules, not the site: the problem goes to the proxy's log.
                rules = replace(rules, errors=(*rules.errors, f"rules: {exc}"))
        return cls(files, read, size, rules, inline_limit, config)
