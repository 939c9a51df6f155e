"""How a deployed file is served: its content type, cache policy and whether to precompress it.

Shared by the builder (which sets these on upload) and the proxy (which serves the files), so
both agree. Standard library only.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=0, must-revalidate"
COMPRESS_MIN_BYTES = 1024
"""Files this size or smaller are not worth a compressed sibling."""
DEFAULT_TYPE = "application/octet-stream"

# `mimetypes` depends on the host's /etc/mime.types (.map, .webp and .woff2 are missing on
# some hosts), so the types a static site ships are spelled out here.
TYPES: dict[str, str] = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}

_CHARSET_TYPES = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
    }
)
_COMPRESSIBLE_TYPES = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/javascript",
        "application/wasm",
        "application/vnd.ms-fontobject",
        "image/svg+xml",
        "image/x-icon",
        "image/bmp",
        "font/ttf",
        "font/otf",
    }
)

# Directories whose files every supported framework names by content hash. The proxy may cache
# these for a year: a new build writes new names rather than new bytes under old names.
# Not `assets/`: Vite copies `public/assets/logo.png` there under its own, unhashed name.
_HASHED_DIRS = (
    "_astro/",  # Astro
    "_next/static/",  # Next.js
    "_app/immutable/",  # SvelteKit
    "static/js/",  # Create React App
    "static/css/",
    "static/media/",
)
_HEX = re.compile(r"[0-9a-f]{8,}|[0-9A-F]{8,}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{8,}")
_DIGIT_RUN = re.compile(r"[0-9]+")


def content_type(path: str) -> str:
    """The Content-Type to serve `path` with, with a UTF-8 charset on text types."""
    suffix = PurePosixPath(path).suffix.lower()
    kind = TYPES.get(suffix) or mimetypes.guess_type(path, strict=False)[0] or DEFAULT_TYPE
    if kind.startswith("text/") or kind in _CHARSET_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def is_compressible(content_type: str) -> bool:
    """Whether files of this type shrink under brotli/gzip (text, not already-compressed media)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return (
        kind.startswith("text/") or kind in _COMPRESSIBLE_TYPES or kind.endswith(("+json", "+xml"))
    )


def is_hashed(path: str) -> bool:
    """Whether `path` names its content, so the bytes behind the name can never change."""
    if path.startswith(_HASHED_DIRS):
        return True
    first, *rest = PurePosixPath(path).name.split(".")[:-1] or [""]
    # A whole name counts only when it is hex (`1a2b3c4d.js`; `Logo1920x1080` is a name); a
    # base64url hash must follow a separator (`index-Bx7a9kQe.js`) or a dot (`main.1a2b3c4d.js`).
    if _HEX.fullmatch(first) and _has_digit_and_letter(first):
        return True
    candidates = _tails(first) + [tail for part in rest for tail in (part, *_tails(part))]
    return any(_looks_like_hash(candidate) for candidate in candidates)


def cache_control(path: str) -> str:
    """Immutable for content-hashed assets; everything else (HTML always) revalidates."""
    if content_type(path).startswith("text/html") or not is_hashed(path):
        return REVALIDATE
    return IMMUTABLE


def _tails(part: str) -> list[str]:
    """The pieces of `part` after each `-` or `_`."""
    return [part[i + 1 :] for i, char in enumerate(part) if char in "-_"]


def _has_digit_and_letter(candidate: str) -> bool:
    return any(char.isdigit() for char in candidate) and any(char.isalpha() for char in candidate)


def _looks_like_hash(candidate: str) -> bool:
    # A missed hash only costs a revalidation, while a false hit pins a mutable file in
    # browsers for a year, so words ("component"), dates ("20240101") and names with a number
    # ("Photo2024", "DarkMode16") must not count.
    if _HEX.fullmatch(candidate):
        return _has_digit_and_letter(candidate)
    # base64url (Rollup, Vite, Astro): both cases, digits scattered in short runs.
    digit_runs = _DIGIT_RUN.findall(candidate)
    return (
        _BASE64URL.fullmatch(candidate) is not None
        and candidate != candidate.lower()
        and candidate != candidate.upper()
        and len(digit_runs) >= 2
        and max(map(len, digit_runs)) <= 3
    )
