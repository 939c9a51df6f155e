"""Who may make an account: `SCALEMESH_SIGNUP`, the first account as admin, admins adding others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from app import database
from app.errors import UserError
from app.settings import Settings
from app.settings_parts import Signup
from app.tables import User
from app.users.service import SIGNUP_CLOSED, UserService
from tests.support import cli_env
from tests.support.api import PASSWORD, Client, bearer, serving, sign_in
from tests.support.pages import FORM, HTML, csrf_of
from tests.support.processes import run_cli

db_env = cli_env.db_env
env = cli_env.env

CLOSED = {"error": "forbidden", "detail": SIGNUP_CLOSED}


@pytest.fixture
def settings_for(
    make_settings: Callable[..., Settings], database_url: str
) -> Callable[[str], Settings]:
    return lambda signup: make_settings(
        SCALEMESH_DATABASE_URL=database_url, SCALEMESH_SIGNUP=signup
    )


def signup(client: Client, email: str) -> Any:
    return client.post("/user/signup", json={"email": email, "password": PASSWORD})


def accounts(client: Client) -> list[tuple[str, bool]]:
    rows = client.run(lambda: User.select(User.email, User.is_admin).order_by(User.id))
    return [(row["email"], row["is_admin"]) for row in rows]


def test_first_is_the_default() -> None:
    assert Settings.from_env({"SCALEMESH_SECRET_KEY": "k" * 48}).signup is Signup.FIRST


def test_under_first_only_the_first_account_signs_up_and_is_admin(
    settings_for: Callable[[str], Settings],
) -> None:
    with serving(settings_for("first")) as client:
        first = signup(client, "ada@example.com")
        second = signup(client, "bob@example.com")

        assert first.status_code == 201
        assert first.json() == {
            "id": first.json()["id"],
            "email": "ada@example.com",
            "is_admin": True,
        }
        assert second.status_code == 403
        assert second.json() == CLOSED
        assert accounts(client) == [("ada@example.com", True)]


def test_under_closed_nobody_signs_up(settings_for: Callable[[str], Settings]) -> None:
    with serving(settings_for("closed")) as client:
        response = signup(client, "ada@example.com")

        assert response.status_code == 403
        assert response.json() == CLOSED
        assert accounts(client) == []


def test_under_open_anyone_signs_up_and_only_the_first_is_admin(
    settings_for: Callable[[str], Settings],
) -> None:
    with serving(settings_for("open")) as client:
        assert signup(client, "ada@example.com").status_code == 201
        second = signup(client, "bob@example.com")

        assert second.status_code == 201
        assert second.json()["is_admin"] is False
        assert accounts(client) == [("ada@example.com", True), ("bob@example.com", False)]


def test_two_first_sign_ups_at_once_make_one_admin(settings_for: Callable[[str], Settings]) -> None:
    settings = settings_for("first")
    with serving(settings) as client:
        users = UserService(settings)

        async def both() -> list[Any]:
            return await asyncio.gather(
                users.sign_up("ada@example.com", PASSWORD),
                users.sign_up("bob@example.com", PASSWORD),
                return_exceptions=True,
            )

        results = client.run(both)

        refused = [r for r in results if isinstance(r, UserError)]
        assert len(refused) == 1, results
        assert refused[0].detail == SIGNUP_CLOSED
        assert [admin for _, admin in accounts(client)] == [True]


def test_an_admin_adds_accounts_even_when_sign_up_is_closed(
    settings_for: Callable[[str], Settings],
) -> None:
    settings = settings_for("closed")
    with serving(settings) as client:
        client.run(lambda: UserService(settings).create("root@example.com", PASSWORD))
        root = sign_in(client, "root@example.com")

        added = client.post(
            "/users", json={"email": "Bob@Example.com", "password": PASSWORD}, headers=bearer(root)
        )
        admin = client.post(
            "/users",
            json={"email": "cy@example.com", "password": PASSWORD, "admin": True},
            headers=bearer(root),
        )

        assert added.status_code == 201, added.text
        assert added.json() == {
            "id": added.json()["id"],
            "email": "bob@example.com",
            "is_admin": False,
        }
        assert admin.status_code == 201
        assert admin.json()["is_admin"] is True
        assert accounts(client) == [
            ("root@example.com", True),
            ("bob@example.com", False),
            ("cy@example.com", True),
        ]
        # The new account signs in with the password the admin chose.
        sign_in(client, "bob@example.com")


def test_only_admins_add_accounts(settings_for: Callable[[str], Settings]) -> None:
    with serving(settings_for("open")) as client:
        assert signup(client, "ada@example.com").status_code == 201
        assert signup(client, "bob@example.com").status_code == 201
        bob = sign_in(client, "bob@example.com")
        body = {"email": "eve@example.com", "password": PASSWORD, "admin": True}

        refused = client.post("/users", json=body, headers=bearer(bob))
        anonymous = client.post("/users", json=body)

        assert refused.status_code == 403
        assert refused.json() == {"error": "forbidden", "detail": "Only an admin can add accounts."}
        assert anonymous.status_code == 401
        assert [email for email, _ in accounts(client)] == ["ada@example.com", "bob@example.com"]


def test_an_admin_cannot_add_a_taken_email(settings_for: Callable[[str], Settings]) -> None:
    with serving(settings_for("first")) as client:
        assert signup(client, "ada@example.com").status_code == 201
        ada = sign_in(client, "ada@example.com")

        again = client.post(
            "/users", json={"email": "ADA@example.com", "password": PASSWORD}, headers=bearer(ada)
        )

        assert again.status_code == 409
        assert len(accounts(client)) == 1


# --- the dashboard --------------------------------------------------------------------------


def test_the_dashboard_offers_sign_up_only_while_it_is_open(
    settings_for: Callable[[str], Settings],
) -> None:
    with serving(settings_for("first")) as client:
        before = client.get("/login", headers=HTML)
        form = client.get("/signup", headers=HTML)
        created = client.post(
            "/signup",
            data={"csrf": csrf_of(form.text), "email": "ada@example.com", "password": PASSWORD},
            headers=FORM,
            follow_redirects=False,
        )
        client.cookies.delete("scalemesh_session")
        after = client.get("/login", headers=HTML)
        closed = client.get("/signup", headers=HTML)

        assert 'href="/signup"' in before.text
        assert created.status_code == 303
        assert 'href="/signup"' not in after.text
        assert closed.status_code == 403
        assert SIGNUP_CLOSED in closed.text
        assert 'action="/signup"' not in closed.text
        assert accounts(client) == [("ada@example.com", True)]


def test_the_dashboard_refuses_a_sign_up_form_once_closed(
    settings_for: Callable[[str], Settings],
) -> None:
    with serving(settings_for("first")) as client:
        form = client.get("/signup", headers=HTML)  # opened while there is no account yet
        assert signup(client, "ada@example.com").status_code == 201

        response = client.post(
            "/signup",
            data={"csrf": csrf_of(form.text), "email": "eve@example.com", "password": PASSWORD},
            headers=FORM,
            follow_redirects=False,
        )

        assert response.status_code == 403
        assert SIGNUP_CLOSED in response.text
        assert "scalemesh_session" not in response.headers.get("set-cookie", "")
        assert accounts(client) == [("ada@example.com", True)]


# --- scalemesh user create ------------------------------------------------------------------


def stored_accounts(environ: dict[str, str]) -> list[tuple[str, bool]]:
    async def read() -> list[tuple[str, bool]]:
        engine = database.make_engine(Settings.from_env(environ).database)
        database.bind(engine)
        rows = await User.select(User.email, User.is_admin).order_by(User.id)
        return [(row["email"], row["is_admin"]) for row in rows]

    return asyncio.run(read())


def test_user_create_works_whatever_sign_up_says_and_makes_admins(
    db_env: dict[str, str],
) -> None:
    db_env["SCALEMESH_SIGNUP"] = "closed"
    assert run_cli("migrate", env=db_env).returncode == 0

    first = run_cli(
        "user", "create", "root@example.com", "--password-stdin", env=db_env, stdin=PASSWORD
    )
    plain = run_cli(
        "user", "create", "bob@example.com", "--password-stdin", env=db_env, stdin=PASSWORD
    )
    admin = run_cli(
        "user",
        "create",
        "cy@example.com",
        "--admin",
        "--password-stdin",
        env=db_env,
        stdin=PASSWORD,
    )

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created admin ")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("created user ")
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.startswith("created admin ")
    assert stored_accounts(db_env) == [
        ("root@example.com", True),
        ("bob@example.com", False),
        ("cy@example.com", True),
    ]
