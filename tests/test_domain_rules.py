"""The rules of custom domains that need no server: reserved names under each kind of root,
the branch a domain may pin, and challenge tokens across a key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domains.rules import (
    TOKEN_LENGTH,
    challenge_token,
    check_allowed,
    check_branch,
    display_name,
    domain_name,
    proof_tokens,
    reserved_reason,
)
from app.errors import ErrorCode, UserError
from app.settings import Settings
from app.settings_parsing import parse_key_ring


def settings(tmp_path: Path, **environ: str) -> Settings:
    return Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_SECRET_KEY": "k" * 32, **environ}
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("*.example.com", "'*.example.com' is a wildcard over 'apps.example.com'"),
        ("apps.example.com", "'apps.example.com' is the same as 'apps.example.com'"),
        ("*.x.apps.example.com", "'*.x.apps.example.com' is under 'apps.example.com'"),
        ("metrics.internal.net", "would cover 'metrics.internal.net'"),
        ("*.internal.net", "would cover 'metrics.internal.net'"),
        ("edge.example.net", "would cover 'edge.example.net'"),
        ("*.localhost.example", None),
        ("example.com", None),
        ("www.example.org", None),
    ],
)
def test_names_that_are_ours_under_a_deeper_root(
    tmp_path: Path, name: str, why: str | None
) -> None:
    ours = settings(
        tmp_path,
        SCALEMESH_ROOT_DOMAIN="apps.example.com",
        SCALEMESH_PROXY_METRICS_HOSTS="metrics.internal.net",
        SCALEMESH_CNAME_TARGET="edge.example.net",
        SCALEMESH_PUBLIC_URL="http://127.0.0.1:8000",  # an address: no hostname to keep
    )

    found = reserved_reason(domain_name(name), ours)

    assert (found is None) == (why is None)
    assert why is None or why in (found or "")


def test_an_admin_may_claim_a_wildcard_that_covers_nothing_of_ours(tmp_path: Path) -> None:
    check_allowed(domain_name("*.example.com"), settings(tmp_path), admin=True)

    with pytest.raises(UserError) as refused:
        check_allowed(domain_name("*.example.com"), settings(tmp_path), admin=False)
    assert refused.value.code is ErrorCode.DOMAIN_FORBIDDEN


def test_a_branch_is_checked_and_none_means_production() -> None:
    assert check_branch(None) is None
    assert check_branch(" refs/heads/release/2.x ") == "release/2.x"
    with pytest.raises(UserError) as refused:
        check_branch("a b")
    assert refused.value.code is ErrorCode.INVALID_BRANCH


def test_a_token_is_bound_to_project_generation_and_name_and_survives_a_key_rotation() -> None:
    old = parse_key_ring("SCALEMESH_SECRET_KEY", "k1:" + "a" * 32)
    rotated = parse_key_ring("SCALEMESH_SECRET_KEY", "k2:" + "b" * 32 + ",k1:" + "a" * 32)

    token = challenge_token(old, 7, "www.example.com", generation="1")

    assert len(token) == TOKEN_LENGTH
    assert token == challenge_token(old, 7, "www.example.com", generation="1")
    assert token != challenge_token(old, 8, "www.example.com", generation="1")
    assert token != challenge_token(old, 7, "example.com", generation="1")
    # A project given a deleted one's id (SQLite) is another generation: another token.
    assert token != challenge_token(old, 7, "www.example.com", generation="2")
    new_claims = challenge_token(rotated, 7, "www.example.com", generation="1")
    assert new_claims != token  # new claims: the new key
    assert token in proof_tokens(rotated, 7, "www.example.com", generation="1")  # still proves it


def test_display_names_keep_the_wildcard() -> None:
    assert display_name("*.xn--bcher-kva.example") == "*.bücher.example"
    assert domain_name("*.BÜCHER.example").name == "*.xn--bcher-kva.example"
