"""Making an account the server's admin in tests (only an admin may build `file://` repos)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.tables import User
from tests.support.api import Client, sign_up


async def make_admin(email: str) -> None:
    """Make the account with this email an admin (in the bound database)."""
    await User.update({User.is_admin: True}).where(User.email == email)


def sign_up_admin(client: Client, email: str = "ada@example.com") -> str:
    """`sign_up`, as the server's admin; the bearer token."""
    token = sign_up(client, email)
    client.run(lambda: make_admin(email))
    return token


def make_admin_in_file(database: Path, email: str) -> None:
    """`make_admin` on a SQLite file another process (or thread) serves."""
    with sqlite3.connect(database, timeout=10) as connection:
        connection.execute(
            "UPDATE scalemesh_user SET is_admin = 1 WHERE email = ?", (email.lower(),)
        )
    connection.close()
