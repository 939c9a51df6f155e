"""Read the request headers that pick the bytes to send (Accept-Encoding, If-None-Match, Range).

Also makes the ETags that If-None-Match and If-Range are compared with.
"""

from __future__ import annotations

from proxy.site import FileInfo

ETAG_LENGTH = 32
"""Hex digits of the sha256 in an ETag: 128 bits, plenty to tell versions apart."""

ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
"""Preferred first: brotli is smaller, and every browser that sends `br` also takes gzip."""
SUFFIXES = dict(ENCODINGS)


def pick_encoding(accept_encoding: str, info: FileInfo) -> str | None:
    if not info.encodings or not accept_encoding:
        return None
    accepted = accepted_codings(accept_encoding)
    for encoding, _suffix in ENCODINGS:
        if encoding in info.encodings and encoding in accepted:
            return encoding
    return None


def accepted_codings(header: str) -> set[str]:
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
        accepted.update(encoding for encoding, _ in ENCODINGS)
    return accepted


def etag_for(info: FileInfo, encoding: str | None) -> str:
    # Each representation needs its own strong tag, or a cache could pair br bytes with gzip.
    suffix = f"-{encoding}" if encoding else ""
    return f'"{info.sha256[:ETAG_LENGTH]}{suffix}"'


def none_match(header: str, etag: str) -> bool:
    """RFC 9110 weak comparison: `W/"x"` matches `"x"`; `*` matches any current file."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
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
