"""Decide what a deployment answers for one request: its static-hosting rules, in one place.

Pure logic: no ASGI and no storage. Files are read through the `Reader` a `Site` is given, and
the answer is a `ProxyResponse` for the ASGI edge to send.

Public API:

- `Rules.parse(redirects_text, headers_text) -> Rules`: a site's `_redirects` and `_headers`
  (Netlify's formats); lines that cannot be used are skipped and listed in `Rules.errors`.
- `await Site.load(manifest, read) -> Site`: a deployment's manifest plus its parsed rules.
  Build it once per deployment and cache it; it never changes.
- `await respond(request: ProxyRequest, site: Site) -> ProxyResponse`: build the request with
  `key=routing.path_to_key(raw_path)` (its `BadPath` is the caller's 400). The response has
  lower-case header names, `Content-Length` included, and the body already read (empty for
  HEAD and 304); a file the manifest lists but storage lacks raises `FileNotFoundError`.

The order of the rules (DESIGN §6): hidden files → `_redirects` (a rule without `!` only when no
file matches) → the file, `dir/index.html`, clean URLs → `404.html` → the single-page-app
fallback → a branded 404. `_headers` then applies to whatever was answered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from builder.content import REVALIDATE, is_compressible
from builder.spec import RESERVED_DIR
from proxy.routing import BadPath, path_to_key

Reader = Callable[[str], Awaitable[bytes]]
"""Reads a file by its deployment-relative key; raises `FileNotFoundError` when it is missing."""
Headers = list[tuple[str, str]]

REDIRECTS_FILE = "_redirects"
HEADERS_FILE = "_headers"
NOT_FOUND_FILE = "404.html"
INDEX_FILE = "index.html"
ETAG_LENGTH = 32
"""Hex digits of the sha256 in an ETag: 128 bits, plenty to tell versions apart."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REWRITE = 200
NOT_FOUND = 404
_RULE_STATUSES = REDIRECT_STATUSES | {REWRITE, NOT_FOUND}
_READ_METHODS = frozenset({"GET", "HEAD"})
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
"""Preferred first: brotli is smaller, and every browser that sends `br` also takes gzip."""
_SUFFIXES = dict(_ENCODINGS)

# A `_headers` file may set caching and security headers, but not the ones that describe the
# bytes on the wire: a wrong one would corrupt the response rather than just mislabel it.
_FRAMING_HEADERS = frozenset(
    {
        "content-length",
        "content-range",
        "content-encoding",
        "transfer-encoding",
        "etag",
        "location",
        "connection",
        "vary",
        "accept-ranges",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")

_NOT_FOUND_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page not found \xc2\xb7 Scale Mesh</title>
<style>
body{margin:0;min-height:100vh;display:grid;place-items:center;background:#0b1020;color:#e6e8ef;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:32rem;padding:2rem;text-align:center}
h1{margin:0 0 .5rem;font-size:1.75rem}
footer{margin-top:2rem;color:#7d859c;font-size:.85rem}
</style>
</head>
<body>
<main>
<h1>Page not found</h1>
<p>This deployment has no page at this address.</p>
<footer>Scale Mesh</footer>
</main>
</body>
</html>
"""


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedirectRule:
    source: str
    target: str
    status: int
    force: bool
    pattern: re.Pattern[str]

    @property
    def is_redirect(self) -> bool:
        return self.status in REDIRECT_STATUSES


@dataclass(frozen=True, slots=True)
class HeaderRule:
    source: str
    headers: tuple[tuple[str, str], ...]
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Rules:
    redirects: tuple[RedirectRule, ...] = ()
    headers: tuple[HeaderRule, ...] = ()
    errors: tuple[str, ...] = ()
    """One line per skipped rule (`_redirects:3: ...`), for the deployment's log."""

    @classmethod
    def parse(cls, redirects_text: str = "", headers_text: str = "") -> Rules:
        errors: list[str] = []
        redirects = tuple(_parse_redirects(redirects_text, errors))
        headers = tuple(_parse_headers(headers_text, errors))
        return cls(redirects, headers, tuple(errors))

    def match_redirect(self, path: str, *, file_exists: bool) -> tuple[RedirectRule, str] | None:
        """The first rule for `path` and its target with placeholders filled in.

        Netlify's shadowing: when a file answers the path, only forced (`!`) rules count.
        """
        for rule in self.redirects:
            if file_exists and not rule.force:
                continue
            found = rule.pattern.fullmatch(path)
            if found is not None:
                return rule, _fill(rule.target, found.groupdict(default=""))
        return None

    def headers_for(self, path: str) -> Headers:
        """Every header of every block matching `path`; repeats of one name are comma-joined."""
        combined: dict[str, tuple[str, list[str]]] = {}
        for rule in self.headers:
            if rule.pattern.fullmatch(path):
                for name, value in rule.headers:
                    combined.setdefault(name.lower(), (name, []))[1].append(value)
        return [(name, ", ".join(values)) for name, values in combined.values()]


def _parse_redirects(text: str, errors: list[str]) -> Iterable[RedirectRule]:
    for number, line in enumerate(text.splitlines(), 1):
        # Only whole lines are comments: `#` inside a target is a URL fragment.
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        where = f"{REDIRECTS_FILE}:{number}"
        if len(fields) < 2 or len(fields) > 3:
            # Netlify's query-parameter and country/language conditions are not supported.
            errors.append(f"{where}: expected `from to [status][!]`")
            continue
        source, target = fields[0], fields[1]
        status_text = fields[2] if len(fields) == 3 else "301"
        force = status_text.endswith("!")
        status_text = status_text.removesuffix("!") or "301"
        if not status_text.isdigit() or int(status_text) not in _RULE_STATUSES:
            errors.append(f"{where}: unsupported status {fields[2]!r}")
            continue
        status = int(status_text)
        if not source.startswith("/"):
            errors.append(f"{where}: the source must be a path starting with /")
            continue
        absolute = target.startswith(("https://", "http://"))
        if not target.startswith("/") and not absolute:
            errors.append(f"{where}: the target must be a path or an http(s) URL")
            continue
        if absolute and status not in REDIRECT_STATUSES:
            # A 200 to another origin would make us a proxy for anyone's site.
            errors.append(f"{where}: only redirects may point at another site")
            continue
        pattern = _compile(source, splat_anywhere=False)
        if pattern is None:
            errors.append(f"{where}: `*` may only end the source")
            continue
        yield RedirectRule(source, target, status, force, pattern)


def _parse_headers(text: str, errors: list[str]) -> Iterable[HeaderRule]:
    source: str | None = None
    pattern: re.Pattern[str] | None = None
    block: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{HEADERS_FILE}:{number}"
        if stripped.startswith(("/", "http://", "https://")):
            if source is not None and pattern is not None and block:
                yield HeaderRule(source, tuple(block), pattern)
            source, block = stripped, []
            if stripped.startswith("/"):
                pattern = _compile(stripped, splat_anywhere=True)
            else:
                # Netlify's per-host blocks: every deployment has several hosts, so such a
                # block would apply inconsistently; drop it whole rather than on every host.
                errors.append(f"{where}: per-host header rules are not supported")
                pattern = None
            continue
        name, colon, value = stripped.partition(":")
        name, value = name.strip(), value.strip()
        if source is None:
            errors.append(f"{where}: a header before any path")
        elif not colon or not _TOKEN.fullmatch(name) or not _is_header_value(value):
            errors.append(f"{where}: expected `Name: value`")
        elif name.lower() in _FRAMING_HEADERS:
            errors.append(f"{where}: {name} is set by the proxy")
        else:
            block.append((name, value))
    if source is not None and pattern is not None and block:
        yield HeaderRule(source, tuple(block), pattern)


def _is_header_value(value: str) -> bool:
    # Printable ASCII only: the ASGI edge sends bytes, and CR/LF would split the response.
    return value.isascii() and value.isprintable()


def _compile(source: str, *, splat_anywhere: bool) -> re.Pattern[str] | None:
    """A regex for a Netlify path pattern: `:name` is one segment, `*` the rest (the splat).

    Trailing slashes do not matter (`/about` and `/about/` are one page), and `/a/*` matches `/a`.
    """
    body = source.rstrip("/")
    if body.endswith("/*"):
        head, tail = body[:-2], r"(?:/(?P<splat>.*))?/?"
    else:
        head, tail = body, "/?"
    if not splat_anywhere and "*" in head:
        return None
    parts: list[str] = []
    seen: set[str] = set()
    for index, piece in enumerate(re.split(r"(:[A-Za-z_][A-Za-z0-9_]*|\*)", head)):
        if index % 2 == 0:
            parts.append(re.escape(piece))
        elif piece == "*":
            # Only `_headers` gets here: `*` inside a path (`/*.js`) is "anything".
            parts.append(".*")
        elif piece[1:] in seen or piece[1:] == "splat":
            parts.append("[^/]+")
        else:
            seen.add(piece[1:])
            parts.append(f"(?P<{piece[1:]}>[^/]+)")
    return re.compile("".join(parts) + (tail if head or tail != "/?" else "/"))


def _fill(target: str, values: Mapping[str, str]) -> str:
    """`target` with `:splat` and `:name` replaced by what they matched, percent-encoded."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in values:
            # `https://host:8080/` has no placeholder, just a port; keep such text as it is.
            return found.group(0)
        return quote(values[name], safe="/" if name == "splat" else "")

    return _PLACEHOLDER.sub(replace, target)


# --- the site ------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Site:
    """One deployment as the proxy sees it: its servable files, its rules and how to read."""

    files: Mapping[str, FileInfo]
    read: Reader
    rules: Rules = field(default_factory=Rules)

    @classmethod
    async def load(cls, manifest: Mapping[str, Any], read: Reader) -> Site:
        """Parse the manifest and read `_redirects`/`_headers` (the only reads done here)."""
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
        return cls(files, read, rules)


# --- requests and responses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    method: str
    key: str
    """From `routing.path_to_key`: relative, `""` for the root, `dir/` for a directory."""
    query: str = ""
    """The raw query string, without `?`."""
    accept_encoding: str = ""
    if_none_match: str = ""
    range: str = ""
    if_range: str = ""
    """An ETag; `Range` only counts while it still names the file (RFC 9110 §13.1.5)."""

    @property
    def path(self) -> str:
        """The decoded path the rules match against."""
        return "/" + self.key


@dataclass(slots=True)
class ProxyResponse:
    status: int
    headers: Headers
    """Lower-case names; Content-Length is always set and matches the GET body."""
    body: bytes = b""
    source: str = ""
    """The key whose bytes the GET body is (`""` when the body is not a file), so the ASGI edge
    can answer a repeat of this request from the object cache without deciding it again."""
    span: tuple[int, int] | None = None
    """For a 206, the slice `[start, stop)` of `source` that the body is."""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True, slots=True)
class _Found:
    """What the static files answer for a key: a file, or a redirect to its canonical URL."""

    key: str = ""
    info: FileInfo | None = None
    location: str = ""


async def respond(request: ProxyRequest, site: Site) -> ProxyResponse:
    """The response for `request`; storage errors from `site.read` propagate (answer 502)."""
    if request.method not in _READ_METHODS:
        response = _plain(405, b"", [("allow", "GET, HEAD")])
    elif is_hidden(request.key.rstrip("/")):
        response = await _not_found(request, site, allow_spa=False)
    else:
        response = await _route(request, site)
    _apply_custom_headers(site.rules.headers_for(request.path), response.headers)
    response.headers.append(("x-content-type-options", "nosniff"))
    if request.method == "HEAD":
        response.body = b""
    return response


async def _route(request: ProxyRequest, site: Site) -> ProxyResponse:
    found = _find(site, request.key)
    matched = site.rules.match_redirect(request.path, file_exists=found is not None)
    if matched is not None:
        rule, target = matched
        if rule.is_redirect:
            return _redirect(rule.status, _with_query(target, request.query))
        rewritten = _find_target(site, target)
        if rewritten is not None and rewritten.info is not None:
            status = 200 if rule.status == REWRITE else NOT_FOUND
            return await _serve(request, site, rewritten.key, rewritten.info, status)
        if rule.status == NOT_FOUND:
            return await _not_found(request, site, allow_spa=False)
    if found is None:
        return await _not_found(request, site, allow_spa=True)
    if found.info is None:
        return _redirect(308, _with_query(found.location, request.query))
    return await _serve(request, site, found.key, found.info, 200)


def _find(site: Site, key: str) -> _Found | None:
    """The file for `key` by the static rules: as is, `dir/index.html`, clean URLs."""
    files = site.files
    if key == "" or key.endswith("/"):
        index = key + INDEX_FILE
        return _Found(index, files[index]) if index in files else None
    if key in files and key.endswith(".html"):
        # One URL per page, so caches and links agree: `/docs/index.html` → `/docs/`,
        # `/about.html` → `/about` (unless a file named `about` would then answer instead).
        clean = key.removesuffix(".html")
        if clean == "index" or clean.endswith("/index"):
            return _Found(location="/" + _quote(clean.removesuffix("index")))
        if clean not in files:
            return _Found(location="/" + _quote(clean))
    if key in files:
        return _Found(key, files[key])
    if key + ".html" in files:
        return _Found(key + ".html", files[key + ".html"])
    if key + "/" + INDEX_FILE in files:
        # Served at `/docs` the page's relative links would resolve against `/`; send it home.
        return _Found(location="/" + _quote(key) + "/")
    return None


def _find_target(site: Site, target: str) -> _Found | None:
    """The file a rewrite points at, its target checked exactly like a request path."""
    try:
        key = path_to_key(target.split("?", 1)[0])
    except BadPath:
        return None
    # A rewrite serves content; it never turns into the canonical-URL redirect of its target
    # (`/* /index.html 200` must serve the file, not send every path to `/`).
    if key in site.files:
        return _Found(key, site.files[key])
    found = _find(site, key)
    if found is None or found.info is not None:
        return found
    index = key.rstrip("/") + "/" + INDEX_FILE
    return _Found(index, site.files[index]) if index in site.files else None


async def _not_found(request: ProxyRequest, site: Site, *, allow_spa: bool) -> ProxyResponse:
    page = site.files.get(NOT_FOUND_FILE)
    if page is not None:
        return await _serve(request, site, NOT_FOUND_FILE, page, NOT_FOUND)
    last = request.key.rstrip("/").rpartition("/")[2]
    index = site.files.get(INDEX_FILE)
    if allow_spa and index is not None and "." not in last:
        # A single-page app routes `/settings/profile` in the browser: hand it the shell.
        return await _serve(request, site, INDEX_FILE, index, 200)
    return _plain(
        NOT_FOUND,
        _NOT_FOUND_PAGE,
        [("content-type", "text/html; charset=utf-8"), ("cache-control", REVALIDATE)],
    )


async def _serve(
    request: ProxyRequest, site: Site, key: str, info: FileInfo, status: int
) -> ProxyResponse:
    headers: Headers = [("content-type", info.content_type), ("cache-control", info.cache_control)]
    if info.compressible:
        headers.append(("vary", "Accept-Encoding"))
    if status != 200:
        # An error page is never a partial or a 304: those describe the page that was asked for.
        encoding = _pick_encoding(request.accept_encoding, info)
        return await _whole(request, site, key, status, headers, encoding)
    headers.append(("accept-ranges", "bytes"))
    byte_range = None
    # A resumed download must not splice bytes of a newer deployment onto an older one; an
    # If-Range date never matches, as we send no Last-Modified.
    if request.range and (not request.if_range or request.if_range == _etag(info, None)):
        byte_range = _parse_range(request.range, info.size)
    # Ranges count bytes of one representation; identity is the one whose size we know.
    encoding = None if byte_range is not None else _pick_encoding(request.accept_encoding, info)
    etag = _etag(info, encoding)
    headers.append(("etag", etag))
    if _none_match(request.if_none_match, etag):
        return _plain(304, b"", headers, length=False)
    if byte_range == "unsatisfiable":
        headers.append(("content-range", f"bytes */{info.size}"))
        return _plain(416, b"", headers)
    if isinstance(byte_range, tuple):
        start, end = byte_range
        headers.append(("content-range", f"bytes {start}-{end}/{info.size}"))
        body = b"" if request.method == "HEAD" else (await site.read(key))[start : end + 1]
        response = _plain(206, body, headers, size=end - start + 1)
        response.source, response.span = key, (start, end + 1)
        return response
    return await _whole(request, site, key, status, headers, encoding)


async def _whole(
    request: ProxyRequest,
    site: Site,
    key: str,
    status: int,
    headers: Headers,
    encoding: str | None,
) -> ProxyResponse:
    if encoding is None:
        body = b"" if request.method == "HEAD" else await site.read(key)
        response = _plain(status, body, headers, size=site.files[key].size)
        response.source = key
        return response
    # The manifest does not give the compressed size, so even HEAD reads the sibling.
    sibling = key + _SUFFIXES[encoding]
    body = await site.read(sibling)
    headers.append(("content-encoding", encoding))
    response = _plain(status, body, headers)
    response.source = sibling
    return response


def _pick_encoding(accept_encoding: str, info: FileInfo) -> str | None:
    if not info.encodings or not accept_encoding:
        return None
    accepted = _accepted_codings(accept_encoding)
    for encoding, _suffix in _ENCODINGS:
        if encoding in info.encodings and encoding in accepted:
            return encoding
    return None


def _accepted_codings(header: str) -> set[str]:
    """Codings with a non-zero q-value (`gzip;q=0` means "not gzip")."""
    accepted: set[str] = set()
    for item in header.split(","):
        coding, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding.strip() and quality > 0:
            accepted.add(coding.strip().lower())
    if "*" in accepted:
        accepted.update(encoding for encoding, _ in _ENCODINGS)
    return accepted


def _etag(info: FileInfo, encoding: str | None) -> str:
    # Each representation needs its own strong tag, or a cache could pair br bytes with gzip.
    suffix = f"-{encoding}" if encoding else ""
    return f'"{info.sha256[:ETAG_LENGTH]}{suffix}"'


def _none_match(header: str, etag: str) -> bool:
    """RFC 9110 weak comparison: `W/"x"` matches `"x"`; `*` matches any current file."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """`(first, last)` inclusive, `"unsatisfiable"`, or None to ignore the header and send it all.

    Only one range is served: multipart answers are rare in practice and RFC 9110 lets a
    server ignore `Range`; so are syntax errors and units other than bytes.
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not (first_text.isdigit() or first_text == ""):
        return None
    if not (last_text.isdigit() or last_text == "") or first_text == last_text == "":
        return None
    if first_text == "":
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(int(last_text), size - 1) if last_text else size - 1


def _apply_custom_headers(custom: Headers, headers: Headers) -> None:
    """Add a site's `_headers` values, replacing our defaults of the same name."""
    names = {name.lower() for name, _ in custom}
    headers[:] = [(name, value) for name, value in headers if name not in names]
    headers.extend((name.lower(), value) for name, value in custom)


def _redirect(status: int, location: str) -> ProxyResponse:
    # A `_redirects` target may hold spaces or non-ASCII text; a header must be ASCII. Escapes
    # already there are kept, so a target is never encoded twice.
    location = quote(location, safe=_URL_SAFE)
    return _plain(status, b"", [("location", location), ("cache-control", REVALIDATE)])


def _plain(
    status: int,
    body: bytes,
    headers: Headers,
    *,
    size: int | None = None,
    length: bool = True,
) -> ProxyResponse:
    if length:
        headers.append(("content-length", str(len(body) if size is None else size)))
    return ProxyResponse(status, headers, body)


def _with_query(target: str, query: str) -> str:
    """`target` keeping the request's query; a target's own query comes first."""
    if not query:
        return target
    return f"{target}{'&' if '?' in target else '?'}{query}"


def _quote(key: str) -> str:
    return quote(key, safe="/")
