"""Passwords are stored as Argon2id hashes with argon2-cffi's production parameters.

The one test that pays Argon2's real cost: every other test hashes with cheap parameters
(`tests/conftest.py`), so this one checks what a real sign-up stores.
"""

from __future__ import annotations

import argon2
import pytest
from argon2 import PasswordHasher

from app.tables import User
from tests.support.api import PASSWORD, Client, bearer, sign_up


@pytest.mark.argon2_production
def test_a_stored_hash_uses_the_production_parameters(client: Client) -> None:
    token = sign_up(client)

    stored = client.run(lambda: User.select(User.password_hash).first())
    assert stored is not None
    parameters = argon2.extract_parameters(stored["password_hash"])
    production = PasswordHasher()
    assert parameters.type is argon2.Type.ID
    assert parameters.time_cost == production.time_cost >= 3
    assert parameters.memory_cost == production.memory_cost >= 64 * 1024
    assert parameters.parallelism == production.parallelism
    assert not production.check_needs_rehash(stored["password_hash"])
    assert client.get("/projects", headers=bearer(token)).status_code == 200
    login = {"email": "ada@example.com", "password": PASSWORD}
    assert client.post("/user/login", json=login).status_code == 200
    assert client.post("/user/login", json={**login, "password": "wrong!"}).status_code == 401
