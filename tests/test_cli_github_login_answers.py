"""`device_login` against scripted API answers: Retry-After, odd answers, an expired code."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.client import ClientError
from app.client.api import Api
from app.client.github_login import START, TOKEN, device_login

BASE = "http://api.test"


def device(expires_in: int = 900) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "user_code": "1234-5678",
            "verification_uri": "https://github.com/login/device",
            "device_code": "the-device-code",
            "interval": 1,
            "expires_in": expires_in,
        },
    )


def api_answering(*polls: httpx.Response, expires_in: int = 900) -> tuple[Api, list[str]]:
    """An `Api` whose device start answers at once and whose polls answer `polls` in turn; the
    device codes the polls sent."""
    answers: Iterator[httpx.Response] = iter(polls)
    sent: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == START:
            return device(expires_in)
        assert request.url.path == TOKEN
        sent.append(json.loads(request.content)["device_code"])
        return next(answers)

    api = Api(BASE)
    api._http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(handle))
    return api, sent


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between polls, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr("app.client.github_login.time.sleep", waited.append)
    return waited


def test_polls_wait_as_long_as_the_api_asks_and_never_less_than_a_second(
    sleeps: list[float],
) -> None:
    api, sent = api_answering(
        httpx.Response(409, json={"error": "conflict"}),  # no Retry-After
        httpx.Response(409, headers={"retry-after": "soon"}),  # not a number of seconds
        httpx.Response(409, headers={"retry-after": "0"}),
        httpx.Response(409, headers={"retry-after": "7"}),
        httpx.Response(200, json={"token": "the-session", "expires_at": "2030-01-01T00:00:00Z"}),
    )

    with api:
        assert device_login(api) == "the-session"

    assert sleeps == [1, 1, 1, 1, 7]
    assert sent == ["the-device-code"] * 5


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, text="<html>signed in</html>"), id="not-json"),
        pytest.param(httpx.Response(200, json={"session": "x"}), id="no-token-field"),
        pytest.param(httpx.Response(200, json={"token": ""}), id="empty-token"),
    ],
)
def test_an_answer_without_a_token_is_an_error(sleeps: list[float], answer: httpx.Response) -> None:
    api, _ = api_answering(answer)

    with api, pytest.raises(ClientError) as failed:
        device_login(api)

    assert str(failed.value) == f"{BASE} answered the GitHub sign-in without a token"


def test_a_code_that_expires_before_it_is_entered_is_an_error(sleeps: list[float]) -> None:
    api, sent = api_answering(expires_in=0)

    with api, pytest.raises(ClientError) as failed:
        device_login(api)

    assert "the GitHub code expired before it was entered" in str(failed.value)
    assert (sleeps, sent) == ([], [])
