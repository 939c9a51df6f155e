"""Sealing secrets at rest: AES-256-GCM under a key derived from `SCALEMESH_SECRET_KEY`.

Each use derives its own key (HKDF-SHA256 with its own `info`), and binds every value to where
it belongs through the associated data, so a sealed value copied to another row does not open.
A blob is a version byte (2) ‖ the key id's length (one byte) ‖ the key id ‖ 12-byte random
nonce ‖ ciphertext and tag. The settings' key ring seals with its first key and opens with the
key the blob names, so keys rotate without re-sealing at once. Version 1 blobs, sealed before
keys had ids, have no key id: every key of the ring is tried on them. Env vars
(`app.projects.envvars`) and GitHub user tokens (`app.auth.user_tokens`) are sealed this way.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.settings_parts import KeyRing

SEAL_VERSION = b"\x02"
UNNAMED_KEY_VERSION = b"\x01"
"""Blobs sealed before keys had ids."""
NONCE_BYTES = 12


class Unopenable(Exception):
    """The blob does not open: another key, another place, or an unknown version."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Box:
    """Seals and opens values for one use (`info`), bound to `aad` each time."""

    def __init__(self, keys: KeyRing, info: bytes) -> None:
        self._kid = keys.primary.id.encode()
        self._aeads = {
            key.id.encode(): AESGCM(
                HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
                    key.secret.reveal().encode()
                )
            )
            for key in keys.keys
        }

    def seal(self, aad: bytes, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self._kid].encrypt(nonce, value.encode(), aad)
        return SEAL_VERSION + bytes([len(self._kid)]) + self._kid + nonce + sealed

    def open(self, aad: bytes, blob: bytes) -> str:
        """The value; `Unopenable` ("version" or "key") when it does not open."""
        version = blob[:1]
        if version == UNNAMED_KEY_VERSION:
            return self._open_with(list(self._aeads.values()), aad, blob[1:])
        if version != SEAL_VERSION or len(blob) < 2:
            raise Unopenable("version")
        end = 2 + blob[1]
        aead = self._aeads.get(blob[2:end])
        return self._open_with([] if aead is None else [aead], aad, blob[end:])

    @staticmethod
    def _open_with(aeads: list[AESGCM], aad: bytes, rest: bytes) -> str:
        nonce, sealed = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        for aead in aeads:
            try:
                return aead.decrypt(nonce, sealed, aad).decode()
            except InvalidTag:
                continue
        raise Unopenable("key")
