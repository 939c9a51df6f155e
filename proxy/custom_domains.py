"""The proxy's own answers about custom domains: a redirecting domain's 308, and the ask of
on-demand TLS (`/_scalemesh/tls-allowed`), which says for which names a certificate may be had.

Caddy asks `GET /_scalemesh/tls-allowed?domain=<name>` before it requests a certificate for a
name a client sent in its TLS handshake: 200 only for a verified custom domain (or one a
verified wildcard covers) and a label under the root domain that has an alias, so nobody can
make us request certificates (and spend the ACME rate limits) for names of their choosing.
Asking costs what serving that name costs: one cached lookup (`Lookup.tls_allowed`).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, quote_from_bytes

from proxy.lookup import Lookup
from proxy.serve import ProxyResponse
from proxy.target import Redirect

log = logging.getLogger(__name__)

TLS_ALLOWED_PATH = "/_scalemesh/tls-allowed"
MAX_ASK_QUERY = 512
"""A longer query names no domain of ours (a name has at most 253 characters): not parsed."""
REDIRECT_CACHE_CONTROL = "public, max-age=0, must-revalidate"
"""A 308 is cacheable for ever by default: a browser must not keep it once the owner changes
where the domain goes (or removes it)."""
# Bytes a Location header may carry as they are: printable ASCII. `%` is among them, so the
# client's own escapes stay exactly as sent; anything else (raw UTF-8) is percent-encoded.
_KEPT = bytes(range(0x21, 0x7F)).decode()


def redirect(scheme: str, raw_path: bytes, query: bytes, target: Redirect) -> ProxyResponse:
    """308 to the same path and query on `target.to`: any method, with its body, goes along."""
    location = f"{scheme}://{target.to}{quote_from_bytes(raw_path, safe=_KEPT)}"
    if query:
        location += f"?{quote_from_bytes(query, safe=_KEPT)}"
    return ProxyResponse(
        status=308,
        headers=[
            ("location", location),
            ("content-length", "0"),
            ("cache-control", REDIRECT_CACHE_CONTROL),
        ],
    )


async def tls_allowed(lookup: Lookup, query: bytes) -> ProxyResponse:
    """Caddy's ask: 200 when a certificate may be issued for `?domain=`, else 404 (logged)."""
    domain = ""
    if len(query) <= MAX_ASK_QUERY:
        try:
            domain = dict(parse_qsl(query.decode("latin-1"), max_num_fields=4)).get("domain", "")
        except ValueError:  # more fields than any ask has
            domain = ""
    # `Lookup` refuses what is not a hostname before it costs a query; a port is no part of
    # a name a certificate is for.
    if domain and ":" not in domain and await lookup.tls_allowed(domain):
        return _answer(200, b"allowed\n")
    log.info("tls refused", extra={"domain": domain[:253] or query[:253].decode("latin-1")})
    return _answer(404, b"not allowed\n")


def _answer(status: int, body: bytes) -> ProxyResponse:
    return ProxyResponse(
        status=status,
        headers=[
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
        ],
        body=body,
    )
