"""Decide what a deployment answers for one request: its static-hosting rules, in one place.

Pure logic: no ASGI and no storage. Files are read through the `Reader` a `Site` is given, and
the answer is a `ProxyResponse` for the ASGI edge to send.

Public API:

- `Rules.parse(redirects_text, headers_text) -> Rules` (`builder.siterules`): a site's `_redirects`
  and `_headers` (Netlify's formats); lines that cannot be used are skipped and listed in
  `Rules.errors`.
- `await Site.load(manifest, read) -> Site` (`proxy.site`): a deployment's manifest plus its
  parsed rules. Build it once per deployment and cache it; it never changes.
- `await respond(request: ProxyRequest, site: Site) -> ProxyResponse`: build the request with
  `key=routing.path_to_key(raw_path)` (its `BadPath` is the caller's 400). The response has
  lower-case header names, `Content-Length` included, and the body already read (empty for
  HEAD and 304) unless `streamed` says the edge sends it (a range, or a file above the
  site's `inline_limit`); a file the manifest lists but storage lacks raises
  `FileNotFoundError`.

The order of the rules (DESIGN §6): hidden files → `_redirects`, then a `netlify.toml`'s
redirects (a rule without `!`/`force` only when no file matches) → the file, `dir/index.html`,
clean URLs → `404.html` → the single-page-app fallback → a branded 404. `_headers` (and the
config file's header rules) then apply to whatever was answered.

A site whose rules come from a `vercel.json` or `scalemesh.json` follows Vercel's order instead:
`cleanUrls`/`trailingSlash` redirects → redirects → `_redirects` → the file (`vercel_paths`) →
rewrites (only after a miss) → `404.html` → the single-page-app fallback → a branded 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from builder.content import REVALIDATE
from builder.siterules import CompiledRules, RequestView
from builder.siterules.compiled import VERCEL
from builder.siterules.files import NOT_FOUND, REDIRECT_STATUSES, REWRITE, Headers
from proxy import vercel_paths
from proxy.request_headers import SUFFIXES, etag_for, none_match, parse_range, pick_encoding
from proxy.routing import BadPath, path_to_key
from proxy.site import FileInfo, Site, is_hidden
from proxy.vercel_paths import INDEX_FILE

NOT_FOUND_FILE = "404.html"

_READ_METHODS = frozenset({"GET", "HEAD"})
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"

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
    host: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """Lower-case names; given only when the site's rules read them (`Site.reads_headers`)."""
    _view: RequestView | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def path(self) -> str:
        """The decoded path the rules match against."""
        return "/" + self.key

    @property
    def view(self) -> RequestView:
        """What a `has`/`missing` condition may look at: built once per request, however many
        steps of the rules ask (kept by hand: `cached_property` needs a `__dict__`, and takes a
        lock on Python 3.11)."""
        view = self._view
        if view is None:
            view = RequestView(self.path, self.query, self.host, dict(self.headers))
            object.__setattr__(self, "_view", view)
        return view


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
    streamed: bool = False
    """The body was not read: the edge sends `source` (its `span`), from memory when it is
    there, else from storage reading only those bytes. Set for a GET's 206, and for a file
    above the site's `inline_limit`, so a large file never sits whole in memory."""

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
    _apply_custom_headers(site.headers_for(request), response.headers)
    if response.header("x-content-type-options") is None:
        response.headers.append(("x-content-type-options", "nosniff"))
    if request.method == "HEAD":
        response.body = b""
    return response


async def _route(request: ProxyRequest, site: Site) -> ProxyResponse:
    if site.config is not None and site.config.semantics == VERCEL:
        return await _route_vercel(request, site, site.config)
    found = _find(site, request.key)
    answer = await _redirect_rules(request, site, site.config, file_exists=found is not None)
    if answer is not None:
        return answer
    if found is None:
        return await _not_found(request, site, allow_spa=True)
    if found.info is None:
        return _redirect(308, _with_query(found.location, request.query))
    return await _serve(request, site, found.key, found.info, 200)


async def _route_vercel(request: ProxyRequest, site: Site, config: CompiledRules) -> ProxyResponse:
    location = vercel_paths.canonical(
        request.path, clean_urls=config.clean_urls, trailing_slash=config.trailing_slash
    )
    if location is not None:
        return _redirect(308, _with_query(location, request.query))
    matched = config.match_redirect(request.view)
    if matched is not None:
        return _redirect(matched.status, _with_query(matched.target, request.query))
    key = vercel_paths.find(site.files, request.key, clean_urls=config.clean_urls)
    # The output's own `_redirects` still counts, as on every site, shadowed by a file.
    answer = await _redirect_rules(request, site, None, file_exists=key is not None)
    if answer is not None:
        return answer
    if key is not None:
        return await _serve(request, site, key, site.files[key], 200)
    target = config.match_rewrite(request.view)
    if target is None:
        return await _not_found(request, site, allow_spa=True)
    rewritten = _find_target(site, target)
    if rewritten is None or rewritten.info is None:
        return await _not_found(request, site, allow_spa=False)
    return await _serve(request, site, rewritten.key, rewritten.info, 200)


async def _redirect_rules(
    request: ProxyRequest, site: Site, config: CompiledRules | None, *, file_exists: bool
) -> ProxyResponse | None:
    """The first of `_redirects`, then `netlify.toml`'s redirects, that answers the request."""
    matched = site.rules.match_redirect(request.path, file_exists=file_exists)
    if matched is not None:
        status, target = matched[0].status, matched[1]
    elif config is not None and (
        found := config.match_redirect(request.view, file_exists=file_exists)
    ):
        status, target = found.status, found.target
    else:
        return None
    if status in REDIRECT_STATUSES:
        return _redirect(status, _with_query(target, request.query))
    rewritten = _find_target(site, target)
    if rewritten is not None and rewritten.info is not None:
        answer = 200 if status == REWRITE else NOT_FOUND
        return await _serve(request, site, rewritten.key, rewritten.info, answer)
    if status == NOT_FOUND:
        return await _not_found(request, site, allow_spa=False)
    return None


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
        encoding = pick_encoding(request.accept_encoding, info)
        return await _whole(request, site, key, status, headers, encoding)
    headers.append(("accept-ranges", "bytes"))
    byte_range = None
    # A resumed download must not splice bytes of a newer deployment onto an older one; an
    # If-Range date never matches, as we send no Last-Modified.
    if request.range and (not request.if_range or request.if_range == etag_for(info, None)):
        byte_range = parse_range(request.range, info.size)
    # Ranges count bytes of one representation; identity is the one whose size we know.
    encoding = None if byte_range is not None else pick_encoding(request.accept_encoding, info)
    etag = etag_for(info, encoding)
    headers.append(("etag", etag))
    if none_match(request.if_none_match, etag):
        return _plain(304, b"", headers, length=False)
    if byte_range == "unsatisfiable":
        headers.append(("content-range", f"bytes */{info.size}"))
        return _plain(416, b"", headers)
    if isinstance(byte_range, tuple):
        start, end = byte_range
        headers.append(("content-range", f"bytes {start}-{end}/{info.size}"))
        # Only the range is read, by the edge (or sliced from memory when the file is there).
        response = _plain(206, b"", headers, size=end - start + 1)
        response.source, response.span = key, (start, end + 1)
        response.streamed = request.method != "HEAD"
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
    size = site.files[key].size
    large = site.inline_limit is not None and size > site.inline_limit
    if encoding is None:
        body = b"" if request.method == "HEAD" or large else await site.read(key)
        response = _plain(status, body, headers, size=size)
        response.source, response.streamed = key, large and request.method != "HEAD"
        return response
    # The manifest does not give the compressed size: a small sibling is read (and cached),
    # even for HEAD; a large one is only sized. Siblings are smaller than their file.
    sibling = key + SUFFIXES[encoding]
    headers.append(("content-encoding", encoding))
    if large:
        response = _plain(status, b"", headers, size=await site.size(sibling))
        response.streamed = request.method != "HEAD"
    else:
        response = _plain(status, await site.read(sibling), headers)
    response.source = sibling
    return response


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
