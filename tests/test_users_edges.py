"""Account edges the HTTP tests do not reach: a sign-up losing the race for its email, a sign-in
from no known address, a token lifetime the service refuses, and the cap on tokens per user."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.errors import ErrorCode, UserError
from app.settings import Settings
from app.tables import LoginFailure, User
from app.users import tokens
from app.users.service import MAX_CLIENT_FAILURES_PER_WINDOW, UserService
from tests.support.api import PASSWORD, Client, bearer, sign_up


def user_service(client: Client) -> UserService:
    settings: Settings = client.app.state.services.dashboard.settings
    return UserService(settings)


def test_a_sign_up_that_loses_the_race_for_its_email_is_told_it_is_taken(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client)
    real_exists = User.exists

    def sees_nothing() -> Any:  # as if the other sign-up committed after these checks
        return real_exists().where(User._meta.primary_key < 0)

    monkeypatch.setattr(User, "exists", sees_nothing)
    with pytest.raises(UserError) as refused:
        client.run(lambda: user_service(client).sign_up("Ada@Example.com", PASSWORD))
    monkeypatch.undo()

    assert refused.value.code is ErrorCode.EMAIL_TAKEN
    assert "ada@example.com already exists" in refused.value.detail
    assert client.run(lambda: User.count()) == 1


def test_a_sign_in_from_no_known_address_is_not_lumped_with_other_unknown_callers(
    client: Client,
) -> None:
    sign_up(client)
    others = [
        LoginFailure(email=f"someone{n}@example.com", client="")
        for n in range(MAX_CLIENT_FAILURES_PER_WINDOW)
    ]
    client.run(lambda: LoginFailure.insert(*others))
    users = user_service(client)

    user_id = client.run(lambda: users.authenticate("ada@example.com", PASSWORD))

    assert user_id == client.run(lambda: User.select(User.id).first())["id"]


def test_the_service_refuses_a_token_lifetime_out_of_range() -> None:
    assert tokens.check_days(None) is None
    assert tokens.check_days(tokens.MAX_DAYS) == timedelta(days=tokens.MAX_DAYS)
    for days in (0, tokens.MAX_DAYS + 1):
        with pytest.raises(UserError) as refused:
            tokens.check_days(days)
        assert refused.value.code is ErrorCode.INVALID_REQUEST


def test_a_user_with_the_most_tokens_allowed_cannot_make_another(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "MAX_TOKENS_PER_USER", 2)
    session = sign_up(client)

    made = [
        client.post("/tokens", json={"name": f"ci {n}"}, headers=bearer(session)) for n in (1, 2)
    ]
    refused = client.post("/tokens", json={"name": "ci 3"}, headers=bearer(session))
    listed = client.get("/tokens", headers=bearer(session)).json()

    assert [m.status_code for m in made] == [201, 201]
    assert refused.status_code == 400
    assert "You have 2 API tokens" in refused.json()["detail"]
    assert sorted(t["name"] for t in listed) == ["ci 1", "ci 2"]
