"""Rotating keys: the first key of a ring signs and seals, every key still verifies and opens."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app import preview_tokens as tokens
from app.auth.user_tokens import TokenSealer
from app.projects import envvars
from app.projects.envvars import Sealer, SealError
from app.settings import Settings
from app.settings_parsing import parse_key_ring
from tests.support.api import PASSWORD, bearer, serving, sign_up
from tests.support.projects import create

OLD, NEW = "1" * 64, "2" * 64
RING_OLD = parse_key_ring("SCALEMESH_SECRET_KEY", f"k1:{OLD}")
RING_BOTH = parse_key_ring("SCALEMESH_SECRET_KEY", f"k2:{NEW},k1:{OLD}")
RING_NEW = parse_key_ring("SCALEMESH_SECRET_KEY", f"k2:{NEW}")


def test_env_vars_sealed_with_the_old_key_open_after_rotation() -> None:
    sealed = Sealer(RING_OLD).seal(7, "TOKEN", "s3cret")

    rotated = Sealer(RING_BOTH)
    assert rotated.open(7, "TOKEN", sealed) == "s3cret"
    resealed = rotated.seal(7, "TOKEN", "s3cret")
    assert resealed[:4] == b"\x02\x02k2", "the blob names the key that sealed it"
    assert Sealer(RING_NEW).open(7, "TOKEN", resealed) == "s3cret"
    with pytest.raises(SealError, match="does not open with this key"):
        Sealer(RING_NEW).open(7, "TOKEN", sealed)


def test_blobs_sealed_before_keys_had_ids_still_open() -> None:
    """Version 1: no key id; every key of the ring is tried."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"scalemesh env vars v1")
    nonce = os.urandom(12)
    legacy = b"\x01" + nonce + AESGCM(key.derive(OLD.encode())).encrypt(nonce, b"old value", b"3:A")

    assert Sealer(RING_BOTH).open(3, "A", legacy) == "old value"
    with pytest.raises(SealError):
        Sealer(RING_NEW).open(3, "A", legacy)


def test_github_user_tokens_rotate_too() -> None:
    sealed = TokenSealer(RING_OLD).seal(1, "token", "gho_x")

    assert TokenSealer(RING_BOTH).open(1, "token", sealed) == "gho_x"
    assert TokenSealer(RING_NEW).open(1, "token", sealed) is None


def test_sessions_tokens_and_env_vars_survive_a_key_rotation(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """Every replica moves to `k2,k1`: no one is signed out, nothing sealed is lost."""
    with serving(
        make_settings(SCALEMESH_DATABASE_URL=database_url, SCALEMESH_SECRET_KEY=f"k1:{OLD}")
    ) as before:
        session = sign_up(before)
        api_token = before.post("/tokens", json={"name": "ci"}, headers=bearer(session))
        assert api_token.status_code == 201, api_token.text
        made = create(before, session, name="web", env={"A": "1"})
        assert made.status_code == 201, made.text

    rotated = make_settings(
        SCALEMESH_DATABASE_URL=database_url, SCALEMESH_SECRET_KEY=f"k2:{NEW},k1:{OLD}"
    )
    with serving(rotated) as after:
        for token in (session, api_token.json()["token"]):
            assert after.get("/user", headers=bearer(token)).status_code == 200
        sealer = Sealer(rotated.require_secret_keys())
        opened = after.run(lambda: envvars.load(sealer, made.json()["id"], "production", "main"))
        assert opened.values == {"A": "1"}
        fresh = after.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})
        assert fresh.status_code == 200

    retired = make_settings(SCALEMESH_DATABASE_URL=database_url, SCALEMESH_SECRET_KEY=f"k2:{NEW}")
    with serving(retired) as later:
        assert later.get("/user", headers=bearer(session)).status_code == 401
        assert later.get("/user", headers=bearer(fresh.json()["token"])).status_code == 200


def test_preview_tokens_name_their_key_and_verify_with_any_key_of_the_ring() -> None:
    old = tokens.preview_keys([("p1", OLD)])
    both = tokens.preview_keys([("p2", NEW), ("p1", OLD)])
    new = tokens.preview_keys([("p2", NEW)])
    token = tokens.sign(old, tokens.COOKIE, "web-git-x", 60)

    assert token.split(".")[1] == "p1"
    assert tokens.verify(both, tokens.COOKIE, "web-git-x", token)
    assert not tokens.verify(new, tokens.COOKIE, "web-git-x", token)
    assert tokens.sign(both, tokens.COOKIE, "web-git-x", 60).split(".")[1] == "p2"
    # A token from before key ids (`<expiry>.<mac>`) is tried with every key.
    expires, _, mac = token.split(".")
    legacy = f"{expires}.{mac}"
    assert tokens.verify(both, tokens.COOKIE, "web-git-x", legacy)
    assert not tokens.verify(new, tokens.COOKIE, "web-git-x", legacy)


def test_bypass_secrets_hashed_with_the_old_key_still_match() -> None:
    old = tokens.preview_keys([("p1", OLD)])
    stored = tokens.bypass_hash(old, "let-me-in")

    assert len(stored) == 64
    assert tokens.bypass_matches(
        tokens.preview_keys([("p2", NEW), ("p1", OLD)]), stored, "let-me-in"
    )
    assert not tokens.bypass_matches(tokens.preview_keys([("p2", NEW)]), stored, "let-me-in")


def test_a_preview_token_is_no_session_and_a_session_no_preview_token(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """Key separation, even with one value for both variables: the preview ring signs only
    preview tokens, the secret ring only sessions, and neither opens the other's."""
    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_SECRET_KEY=f"k1:{OLD}",
        SCALEMESH_PREVIEW_KEY=f"p1:{OLD}",
    )
    ring = settings.require_preview_keys()
    preview = tokens.preview_keys((key.id, key.secret.reveal()) for key in ring.keys)
    with serving(settings) as client:
        session = sign_up(client)
        signed = tokens.sign(preview, tokens.COOKIE, "web-git-x", 60)

        assert client.get("/user", headers=bearer(signed)).status_code == 401
        assert client.get("/user", headers=bearer(session)).status_code == 200
    assert not tokens.verify(preview, tokens.COOKIE, "web-git-x", session)
    assert not tokens.verify(preview, tokens.COOKIE, "web-git-x", f"9999999999.p1.{session}")
    assert tokens.verify(preview, tokens.COOKIE, "web-git-x", signed)
