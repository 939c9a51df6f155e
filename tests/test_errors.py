"""Every error reaches the caller as `{"error", "detail"}`; nothing unexpected leaks a trace."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.testing import TestClient

from app.errors import DEPLOYMENT_CODES, KIND, STATUS, ErrorCode, ErrorKind, UserError
from app.http.errors import EXCEPTION_HANDLERS
from app.logconfig import JsonFormatter
from app.reporting.messages import GITHUB_TEXT
from app.tables import User
from tests.support.api import Client


def raising(exc: Exception) -> Any:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise exc

    return Litestar([boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)


@pytest.mark.parametrize(
    ("exc", "status", "code", "detail"),
    [
        (NotAuthorizedException(), 401, "unauthorized", "Sign in first"),
        (PermissionDeniedException(), 403, "forbidden", "You may not do that."),
        (ClientException("Query is wrong."), 400, "invalid_request", "Query is wrong."),
        (ClientException(), 400, "invalid_request", "Bad Request"),
        (HTTPException(status_code=503), 503, "internal", "went wrong on our side"),
        (
            ValidationException(
                "Validation failed",
                extra=[
                    {"message": "Expected `int`", "key": "page", "source": "query"},
                    {"message": ""},
                    "junk",
                ],
            ),
            400,
            "invalid_request",
            "query parameter 'page': Expected `int`",
        ),
        (ValidationException("Validation failed"), 400, "invalid_request", "Validation failed"),
        (
            UserError(ErrorCode.TOO_MANY_SIGN_INS, "Slow down.", retry_after=5),
            429,
            "too_many_requests",
            "Slow down.",
        ),
    ],
)
def test_exceptions_become_error_bodies(
    exc: Exception, status: int, code: str, detail: str
) -> None:
    with TestClient(raising(exc)) as client:
        response = client.get("/boom")

    assert response.status_code == status
    assert response.json()["error"] == code
    assert detail in response.json()["detail"]
    if isinstance(exc, UserError):
        assert response.headers["retry-after"] == "5"


def test_an_unexpected_error_is_logged_and_answered_without_a_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR), TestClient(raising(KeyError("secret-ish"))) as client:
        response = client.get("/boom")

    assert response.status_code == 500
    assert response.json() == {
        "error": "internal",
        "detail": "Something went wrong on our side; it has been logged. Try again later.",
    }
    assert "Traceback" not in response.text
    assert "secret-ish" not in response.text
    assert any(record.exc_info for record in caplog.records)


def test_json_logs_carry_extra_fields_and_tracebacks() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "deployment failed",
            (),
            None,
            extra={"deployment_id": "d1", "color_message": "\x1b[31mx"},
        )
        import sys

        record.exc_info = sys.exc_info()

    entry = json.loads(JsonFormatter().format(record))

    assert entry["msg"] == "deployment failed"
    assert entry["level"] == "error"
    assert entry["deployment_id"] == "d1"
    assert "color_message" not in entry
    assert "ValueError: broken" in entry["exc"]


def test_an_oversize_body_is_a_413_and_stores_nothing(client: Client) -> None:
    big = b'{"email": "a@example.com", "password": "' + b"x" * (1024 * 1024) + b'"}'

    response = client.post(
        "/user/signup", content=big, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json() == {
        "error": "too_large",
        "detail": (
            "The request body is too large (the limit is 1 MiB; 25 MiB for GitHub deliveries)."
        ),
    }
    assert client.run(lambda: User.count()) == 0


def test_an_unknown_path_is_a_404_body(client: Client) -> None:
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Nothing at /no/such/page."}


def test_a_wrong_method_is_a_405_body(client: Client) -> None:
    response = client.delete("/health")

    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": "DELETE is not allowed here.",
    }


def test_nul_characters_are_refused_at_the_door(client: Client) -> None:
    body = client.post(
        "/user/signup",
        content=b'{"email": "a\\u0000@example.com", "password": "correct horse"}',
        headers={"Content-Type": "application/json"},
    )
    path = client.get("/projects/we%00b")
    query = client.get("/health?x=%00")

    assert body.status_code == 400
    assert "NUL character" in body.json()["detail"]
    assert path.status_code == 400
    assert query.status_code == 400
    assert client.run(lambda: User.count()) == 0


def test_a_json_body_that_is_not_utf8_is_refused_with_a_400(client: Client) -> None:
    json_type = {"Content-Type": "application/json"}
    # msgspec raises UnicodeDecodeError for these, which would have been a 500.
    bare = client.post("/user/signup", content=b'"\x80"', headers=json_type)
    inside = client.post(
        "/user/signup",
        content=b'{"email": "\xa3@example.com", "password": "correct horse"}',
        headers=json_type,
    )

    assert bare.status_code == 400
    assert bare.json() == {
        "error": "invalid_request",
        "detail": "The request body is not valid JSON: byte 1 is not UTF-8.",
    }
    assert inside.status_code == 400
    assert inside.json()["detail"] == "The request body is not valid JSON: byte 11 is not UTF-8."
    assert client.run(lambda: User.count()) == 0


def test_every_code_has_a_kind_with_a_status_and_codes_are_unique() -> None:
    assert set(KIND) == set(ErrorCode)
    assert set(STATUS) == set(ErrorKind)
    # A StrEnum silently makes a repeated value an alias of the first member: refuse that.
    assert len({code.value for code in ErrorCode}) == len(ErrorCode.__members__)


def test_every_deployment_code_has_a_github_text_and_keeps_its_stored_name() -> None:
    assert set(GITHUB_TEXT) == DEPLOYMENT_CODES
    # Stored in Deployment.error_code: renaming one would orphan every row that has it.
    assert {code.value for code in DEPLOYMENT_CODES} == {
        "build_failed",
        "timeout",
        "no_output",
        "start_failed",
        "env_unopenable",
        "clone_token_unavailable",
        "interrupted",
        "cancelled",
        "superseded",
        "branch_deleted",
        "fork_refused",
        "alias_taken",
    }


@pytest.mark.parametrize("code", [code for code in ErrorCode if code not in DEPLOYMENT_CODES])
def test_a_user_error_answers_with_its_kind_and_status(code: ErrorCode) -> None:
    with TestClient(raising(UserError(code, "What to do."))) as client:
        response = client.get("/boom")

    assert response.status_code == STATUS[KIND[code]]
    assert response.json() == {"error": KIND[code].value, "detail": "What to do."}
    assert "retry-after" not in response.headers
