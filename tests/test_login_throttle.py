"""Failed sign-ins counted per client address as well as per email; hashing a few at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from argon2 import PasswordHasher

from app.tables import LoginFailure
from app.users import passwords
from app.users.service import MAX_CLIENT_FAILURES_PER_WINDOW, MAX_FAILURES_PER_WINDOW
from tests.support.api import PASSWORD, Client, sign_up
from tests.support.pages import HTML, csrf_of

CLIENT = "testclient"
"""The client address Litestar's test client presents."""


def login(client: Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/user/login", json={"email": email, "password": password})


def failures(client: Client, address: str) -> int:
    return client.run(lambda: LoginFailure.count().where(LoginFailure.client == address))


def test_failures_are_recorded_with_the_client_address(client: Client) -> None:
    sign_up(client)

    response = client.post(
        "/user/login", json={"email": "ada@example.com", "password": "wrong password"}
    )

    assert response.status_code == 401
    rows = client.run(lambda: LoginFailure.select(LoginFailure.email, LoginFailure.client))
    assert rows == [{"email": "ada@example.com", "client": CLIENT}]


def test_many_failures_from_one_address_are_refused_for_a_while(client: Client) -> None:
    sign_up(client)
    assert MAX_CLIENT_FAILURES_PER_WINDOW > MAX_FAILURES_PER_WINDOW
    # Each email stays under its own limit: only the address's count can refuse.
    for index in range(MAX_CLIENT_FAILURES_PER_WINDOW):
        wrong = {"email": f"guess{index}@example.com", "password": "wrong password"}
        assert client.post("/user/login", json=wrong).status_code == 401

    # Even the right password for a real account is refused from this address now.
    response = client.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 429
    assert response.json()["error"] == "too_many_requests"
    assert "from your address" in response.json()["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= 61
    assert failures(client, CLIENT) == MAX_CLIENT_FAILURES_PER_WINDOW


def test_another_address_failing_does_not_refuse_this_one(client: Client) -> None:
    sign_up(client)
    client.run(
        lambda: LoginFailure.insert(
            *[
                LoginFailure(email=f"guess{n}@example.com", client="203.0.113.9")
                for n in range(MAX_CLIENT_FAILURES_PER_WINDOW)
            ]
        )
    )

    response = client.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 200


def test_a_good_sign_in_does_not_clear_the_address_count(client: Client) -> None:
    sign_up(client)
    now = datetime.now(UTC)
    client.run(
        lambda: LoginFailure.insert(
            *[
                LoginFailure(email=f"guess{n}@example.com", client=CLIENT, failed_at=now)
                for n in range(MAX_CLIENT_FAILURES_PER_WINDOW - 1)
            ]
        )
    )

    assert login(client, "ada@example.com").status_code == 200

    assert failures(client, CLIENT) == MAX_CLIENT_FAILURES_PER_WINDOW - 1
    assert login(client, "eve@example.com", "wrong password").status_code == 401
    assert login(client, "ada@example.com").status_code == 429


def test_the_dashboard_counts_its_failures_per_address_too(client: Client) -> None:
    form = client.get("/login", headers=HTML)

    response = client.post(
        "/login",
        data={"csrf": csrf_of(form.text), "email": "nobody@example.com", "password": "x" * 8},
    )

    assert response.status_code == 401
    assert failures(client, CLIENT) == 1


# --- hashing a few at a time ------------------------------------------------------------------


class RecordingHasher(PasswordHasher):
    """A cheap hasher that records how many hashes and checks run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def _enter(self) -> None:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)  # long enough for every other caller to pile in, were they let in

    def _leave(self) -> None:
        with self._lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            return super().hash(password, salt=salt)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            return super().verify(hash, password)
        finally:
            self._leave()


def test_at_most_a_few_hashes_and_checks_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = RecordingHasher()
    monkeypatch.setattr(passwords, "HASHER", hasher)
    stored = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)

    async def burst() -> list[object]:
        return await asyncio.gather(
            *[passwords.hash_password(PASSWORD) for _ in range(6)],
            *[passwords.verify_password(stored, PASSWORD) for _ in range(6)],
            *[passwords.verify_password(None, PASSWORD) for _ in range(2)],
        )

    results = asyncio.run(burst())

    assert results[6:12] == [True] * 6
    assert results[12:] == [False, False]
    assert hasher.calls >= 14
    assert hasher.most <= passwords.MAX_CONCURRENT_HASHES
    assert hasher.most == passwords.MAX_CONCURRENT_HASHES  # they do run side by side, up to it


def test_each_event_loop_gets_its_own_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "HASHER", RecordingHasher())

    # A semaphore bound to a finished loop would refuse to work in the next one.
    first = asyncio.run(passwords.hash_password(PASSWORD))
    second = asyncio.run(passwords.hash_password(PASSWORD))

    assert first.startswith("$argon2id$")
    assert second.startswith("$argon2id$")
