"""Turn a request's `Host` and raw path into a label (or custom domain) and a safe file key.

Glossary (DESIGN §6): the *host* is the `Host` header; its *label* is the one DNS label left of
`SCALEMESH_ROOT_DOMAIN`; any other host is a *custom domain*, looked up as a `Domain` row.
The *path* is what the client asked for; the *key* is the path relative to a deployment's
prefix. Nothing here touches storage: the point is that no key built from a request can leave
its prefix.

Public API:

- `label_for_host(host, root_domain) -> HostMatch`
- `path_to_key(raw_path) -> str`, raising `BadPath` (answer 400)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

MAX_LABEL = 63
MAX_HOSTNAME = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HEX = frozenset(b"0123456789abcdefABCDEF")

# Bytes a client must never smuggle in percent-encoded: decoded, they would split or climb out
# of a segment (`%2e%2e`, `%2f`, `%5c`), or hide a second round of encoding (`%25`) for some
# layer behind us to decode again.
_ENCODED_REFUSED = frozenset(b"./\\%")
# Raw bytes refused before any decoding; absent these and `%`, decoding is the identity.
_RAW_REFUSED = re.compile(rb"[\x00-\x1f\x7f\\]")


class HostKind(StrEnum):
    LABEL = "label"
    """A label under the root domain: a project, branch or deployment alias."""
    CUSTOM = "custom"
    """A full hostname outside the root domain: a custom domain (a `Domain` row)."""
    INVALID = "invalid"
    """Not a hostname we could serve; answer 400 (or the branded 404)."""


@dataclass(frozen=True, slots=True)
class HostMatch:
    kind: HostKind
    name: str = ""
    """The label, or the whole normalised hostname for a custom domain; `""` when invalid."""

    @property
    def label(self) -> str | None:
        return self.name if self.kind is HostKind.LABEL else None

    @property
    def custom(self) -> str | None:
        return self.name if self.kind is HostKind.CUSTOM else None


INVALID_HOST = HostMatch(HostKind.INVALID)


class BadPath(ValueError):
    """The request path is malformed or tries to leave the deployment; answer 400."""


def label_for_host(host: str, root_domain: str) -> HostMatch:
    """Classify a `Host` header value against the root domain (both compared case-folded)."""
    name = _hostname(host)
    root = root_domain.strip().lower().removesuffix(".")
    if name is None or not root:
        return INVALID_HOST
    if name == root:
        # The apex has no label; nothing is deployed there.
        return INVALID_HOST
    if name.endswith("." + root):
        label = name[: -len(root) - 1]
        # `a.b.<root>` is refused rather than read as `b`: one name, one deployment.
        if "." in label or not _LABEL.fullmatch(label):
            return INVALID_HOST
        return HostMatch(HostKind.LABEL, label)
    return HostMatch(HostKind.CUSTOM, name)


def _hostname(host: str) -> str | None:
    """The lower-cased DNS name in `host` without port or trailing dot, or None if it is not one."""
    host = host.strip().lower()
    if not host or not host.isascii() or host.startswith("["):
        # Browsers send IDNs as punycode; an IPv6 literal is never one of our names.
        return None
    name, colon, port = host.rpartition(":")
    if colon:
        if not port.isdigit() or len(port) > 5:
            return None
        host = name
    host = host.removesuffix(".")
    if not host or len(host) > MAX_HOSTNAME:
        return None
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        # An IP literal (`10.0.0.1`) or worse; no alias is named like that.
        return None
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return host


def path_to_key(raw_path: str | bytes) -> str:
    """The deployment-relative key for a raw (still percent-encoded) request path.

    Decodes percent-escapes exactly once and refuses anything ambiguous rather than guessing:
    `..` segments, encoded dots, slashes, backslashes and `%`, control characters and invalid
    UTF-8. `//` and `/./` collapse. The key never starts with `/` and has no `.`/`..` segments;
    it is `""` for the root, and keeps one trailing `/` for a directory request (`docs/`).
    """
    raw = raw_path.encode("utf-8") if isinstance(raw_path, str) else bytes(raw_path)
    # ASGI's `raw_path` has no query, but a caller passing a whole target must not smuggle one.
    raw = raw.split(b"?", 1)[0]
    if not raw.startswith(b"/"):
        raise BadPath("the path must start with /")
    decoded = _percent_decode(raw)
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        # Includes overlong forms such as `%c0%ae`, which old decoders read as `.`.
        raise BadPath("the path is not valid UTF-8") from None
    segments: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise BadPath("the path must not climb with ..")
        _check_segment(segment)
        segments.append(segment)
    key = "/".join(segments)
    directory = text.endswith(("/", "/.")) and bool(key)
    return key + "/" if directory else key


def _percent_decode(raw: bytes) -> bytes:
    if b"%" not in raw:
        # Most paths: one scan in C instead of a Python loop over every byte.
        if _RAW_REFUSED.search(raw):
            raise BadPath("the path must not contain control characters or backslashes")
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i]
        if byte < 0x20 or byte == 0x7F or byte == ord("\\"):
            raise BadPath("the path must not contain control characters or backslashes")
        if byte != ord("%"):
            out.append(byte)
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if len(pair) != 2 or not all(char in _HEX for char in pair):
            raise BadPath("the path has a malformed percent-escape")
        value = int(pair, 16)
        if value in _ENCODED_REFUSED or value < 0x20 or value == 0x7F:
            raise BadPath("the path must not encode dots, slashes, % or control characters")
        out.append(value)
        i += 3
    return bytes(out)


def _check_segment(segment: str) -> None:
    if segment.isascii():
        # Decoding already refused ASCII controls and backslashes, and NFKC leaves ASCII as is.
        return
    if any(unicodedata.category(char) == "Cc" for char in segment):
        # C1 controls (U+0080-U+009F) arrive as valid UTF-8 and pass the byte check.
        raise BadPath("the path must not contain control characters")
    # A store or file system that normalises names (or a CDN in front) could read fullwidth
    # or one-dot-leader characters as `.`, `/` or `\`; refuse what would then climb or split.
    folded = unicodedata.normalize("NFKC", segment)
    if folded in (".", "..") or "/" in folded or "\\" in folded or "\0" in folded:
        raise BadPath("the path has characters that stand in for dots or slashes")
