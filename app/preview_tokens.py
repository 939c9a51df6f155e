"""Signed tokens for protected previews: the API grants them, the proxy checks them.

A token binds one purpose (`handoff`: the 60 s link from the API to the proxy; `cookie`: the
proxy's own cookie), one alias hostname (a label such as `shop-git-main`, or a custom domain
together with its project: `binding`) and an expiry: `<expiry>.<key id>.<hex HMAC-SHA256>`.
The keys are dedicated to this job, derived from the settings' preview keys
(`SCALEMESH_PREVIEW_KEY`, the one key the proxy holds), so a token can open nothing else. They
rotate as the secret keys do: the first signs, every one verifies, the token names its key
(tokens from before keys had ids, `<expiry>.<hex>`, are tried with each). Bypass secrets are
stored as a keyed hash (`bypass_hash`), never in the clear.

Which hostnames a protection level covers is decided here too (`protects`), so the proxy need
not import the projects package. Standard library only: both sides import it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Final

HANDOFF: Final = "handoff"
COOKIE: Final = "cookie"
HANDOFF_SECONDS: Final = 60
COOKIE_SECONDS: Final = 12 * 60 * 60
COOKIE_NAME: Final = "scalemesh_preview"
AUTH_PATH: Final = "/_scalemesh/auth"
"""Where the proxy takes a hand-off token and sets its cookie, on the deployment's own host."""
BYPASS_HEADER: Final = "x-scalemesh-bypass"
BYPASS_PARAM: Final = "scalemesh-bypass"
_KEY_INFO: Final = b"scalemesh preview tokens v1"
# `app.projects.rules.Protection`'s values, repeated so the proxy does not import the API.
NONE, PREVIEWS, ALL = "none", "previews", "all"


PreviewKeys = tuple[tuple[str, bytes], ...]
"""(key id, key) pairs; the first signs."""


def preview_key(secret_key: str) -> bytes:
    """The key for preview tokens and bypass hashes: HMAC(preview key, "…preview tokens v1")."""
    return hmac.new(secret_key.encode(), _KEY_INFO, hashlib.sha256).digest()


def preview_keys(keys: Iterable[tuple[str, str]]) -> PreviewKeys:
    """The signing keys of the settings' preview key ring ((id, key) pairs, the first signs)."""
    return tuple((key_id, preview_key(secret)) for key_id, secret in keys)


def _candidates(keys: PreviewKeys, key_id: str | None) -> Iterable[bytes]:
    """The key a token or hash names, or every key for one made before keys had ids."""
    return (key for kid, key in keys if key_id is None or kid == key_id)


def protects(protection: str, hostname: str, slug: str) -> bool:
    """Whether `hostname` (an alias of project `slug`) opens only for allowed viewers.

    `previews` covers every hostname but the production label (`<slug>`); `all` covers every
    one; anything else (`none`) covers none.
    """
    if protection == ALL:
        return True
    return protection == PREVIEWS and hostname != slug


def binding(hostname: str, project_id: int) -> str:
    """What a token for `hostname` is bound to: a label alone (a project's own name), a custom
    domain together with its project, so a cookie for a domain does not open it once another
    project has taken the name over (a proven claim can move a domain between tenants)."""
    return f"{hostname}@{project_id}" if "." in hostname else hostname


def _mac(key: bytes, purpose: str, hostname: str, expires: int) -> str:
    # hmac.digest is OpenSSL's one-shot HMAC: no Python-level HMAC object per request.
    return hmac.digest(key, f"{purpose}|{hostname}|{expires}".encode(), "sha256").hex()


def sign(
    keys: PreviewKeys, purpose: str, hostname: str, lifetime: int, now: float | None = None
) -> str:
    """A token for `hostname` and `purpose`, valid for `lifetime` seconds."""
    key_id, key = keys[0]
    expires = int(time.time() if now is None else now) + lifetime
    return f"{expires}.{key_id}.{_mac(key, purpose, hostname, expires)}"


def verify(
    keys: PreviewKeys, purpose: str, hostname: str, token: str, now: float | None = None
) -> bool:
    """True only for an unexpired token signed for this purpose and hostname (constant time)."""
    expires_text, dot, rest = token.partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        return False
    key_id, dot, mac = rest.rpartition(".")
    return any(
        hmac.compare_digest(mac, _mac(key, purpose, hostname, expires))
        for key in _candidates(keys, key_id if dot else None)
    )


def new_bypass_secret() -> str:
    return secrets.token_urlsafe(32)


def bypass_hash(keys: PreviewKeys, secret: str) -> str:
    """What is stored of a bypass secret: 64 hex characters under the signing key, useless
    without it. The column holds no key id: checking tries every key."""
    return _bypass_mac(keys[0][1], secret)


def _bypass_mac(key: bytes, secret: str) -> str:
    return hmac.new(key, b"bypass|" + secret.encode(), hashlib.sha256).hexdigest()


def bypass_matches(keys: PreviewKeys, stored: str | None, presented: str) -> bool:
    if not stored or not presented or len(presented) > 256:
        return False
    return any(hmac.compare_digest(_bypass_mac(key, presented), stored) for _, key in keys)
