"""Sealing secrets at rest: AES-256-GCM under a key derived from `SCALEMESH_SECRET_KEY`.

Each use derives its own key (HKDF-SHA256 with its own `info`), and binds every value to where
it belongs through the associated data, so a sealed value copied to another row does not open.
A blob is a version byte ‖ 12-byte random nonce ‖ ciphertext and tag. Env vars
(`app.projects.envvars`) and GitHub user tokens (`app.auth.user_tokens`) are sealed this way.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.settings_parts import Secret

SEAL_VERSION = b"\x01"
NONCE_BYTES = 12


class Unopenable(Exception):
    """The blob does not open: another key, another place, or an unknown version."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Box:
    """Seals and opens values for one use (`info`), bound to `aad` each time."""

    def __init__(self, secret_key: Secret, info: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            secret_key.reveal().encode()
        )
        self._aead = AESGCM(key)

    def seal(self, aad: bytes, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return SEAL_VERSION + nonce + self._aead.encrypt(nonce, value.encode(), aad)

    def open(self, aad: bytes, blob: bytes) -> str:
        """The value; `Unopenable` ("version" or "key") when it does not open."""
        if blob[:1] != SEAL_VERSION:
            raise Unopenable("version")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, aad).decode()
        except InvalidTag:
            raise Unopenable("key") from None
