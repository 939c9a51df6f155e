"""`scalemesh login --github`: GitHub's device flow, through the API, for a session token.

The API starts the flow (`POST /auth/github/device`); the user opens GitHub's page and types
the code shown; meanwhile this polls `POST /auth/github/device/token`, at GitHub's interval
(longer when the API says `Retry-After`, as after a `slow_down`), until the API answers with a
session token, refuses, or the code expires.
"""

from __future__ import annotations

import sys
import time

import msgspec

from app.client import ClientError
from app.client.answers import TokenAnswer
from app.client.api import Api

START = "/auth/github/device"
TOKEN = "/auth/github/device/token"  # noqa: S105 - a path
PENDING = 409


class DeviceAnswer(msgspec.Struct):
    user_code: str
    verification_uri: str
    device_code: str
    interval: int
    expires_in: int


def device_login(api: Api) -> str:
    """A session token once the user approved on GitHub; `ClientError` otherwise."""
    device = api.answer(DeviceAnswer, "POST", START)
    print(
        f"Open {device.verification_uri} and enter {device.user_code}",
        file=sys.stderr,
        flush=True,
    )
    interval = max(1, device.interval)
    deadline = time.monotonic() + device.expires_in
    while time.monotonic() < deadline:
        time.sleep(interval)
        response = api.call(
            "POST", TOKEN, body={"device_code": device.device_code}, accept=(PENDING,)
        )
        if response.status_code == PENDING:
            interval = max(interval, _seconds(response.headers.get("retry-after")))
            continue
        try:
            token = msgspec.json.decode(response.content, type=TokenAnswer).token
        except msgspec.DecodeError:
            token = ""
        if not token:
            raise ClientError(f"{api.base} answered the GitHub sign-in without a token")
        return token
    raise ClientError("the GitHub code expired before it was entered; run scalemesh login again")


def _seconds(raw: str | None) -> int:
    try:
        return max(1, int(raw or ""))
    except ValueError:
        return 1
