"""The one place exceptions become HTTP answers: `{"error": "<kind>", "detail": "<what to do>"}`.

A `UserError`'s kind picks the status (`app.errors.STATUS`) and the `error` field. Litestar's
own exceptions are mapped to the same shape, and the log bus being unreachable is a 503
(`ErrorCode.LOG_UNAVAILABLE`). Anything unexpected is logged with its traceback
and answered with a generic 500 that never shows the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from app.errors import STATUS, ErrorCode, UserError
from app.http.csrf import takes_json
from app.logs.bus import LogBusError

log = logging.getLogger(__name__)


def status_of(exc: UserError) -> int:
    return STATUS[exc.kind]


def error_response(
    status_code: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": code, "detail": detail},
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=dict(headers or {}),
    )


def _user_error(_: Request[Any, Any, Any], exc: UserError) -> Response[dict[str, str]]:
    headers = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
    return error_response(status_of(exc), exc.kind.value, exc.detail, headers)


def _validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, str]]:
    return error_response(400, "invalid_request", _explain_validation(exc))


def _explain_validation(exc: ValidationException) -> str:
    """Turn Litestar's list of problems into one sentence naming each field."""
    problems: list[str] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        message = str(item.get("message", "")).strip() if isinstance(item, dict) else ""
        if not message:
            continue
        if message == "'data'":  # Litestar's KeyError text when there is no body at all
            problems.append("The request body is empty; send a JSON object.")
            continue
        key = str(item.get("key") or "")
        source = item.get("source")
        if source in ("query", "path", "header", "cookie"):
            problems.append(f"{source} parameter {key!r}: {message}")
        elif key and key != "data":
            problems.append(f"{key.removeprefix('data.')}: {message}")
        else:
            problems.append(message)
    return "; ".join(problems) or str(exc.detail) or "The request is not valid."


def _http_exception(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, str]]:
    headers = dict(exc.headers or {})
    if isinstance(exc, RequestEntityTooLarge):
        return error_response(
            413,
            "too_large",
            "The request body is too large (the limit is 1 MiB; 25 MiB for GitHub deliveries).",
            headers,
        )
    if isinstance(exc, NotAuthorizedException):
        return error_response(401, "unauthorized", "Sign in first (POST /user/login).", headers)
    if isinstance(exc, PermissionDeniedException):
        return error_response(403, "forbidden", "You may not do that.", headers)
    if isinstance(exc, NotFoundException):
        return error_response(404, "not_found", f"Nothing at {request.url.path}.", headers)
    if isinstance(exc, MethodNotAllowedException):
        return error_response(
            405, "method_not_allowed", f"{request.method} is not allowed here.", headers
        )
    if exc.status_code >= 500:
        log.error(
            "http exception",
            extra={"path": request.url.path, "status": exc.status_code, "detail": exc.detail},
        )
        return error_response(exc.status_code, "internal", "Something went wrong on our side.")
    detail = str(exc.detail)  # Litestar fills in the status phrase when none was given
    if detail.startswith("JSON is malformed"):
        detail = f"The request body is not valid JSON ({detail})."
    return error_response(exc.status_code, "invalid_request", detail, headers)


async def refuse_nul_characters(request: Request[Any, Any, Any]) -> None:
    """Refuse NUL characters anywhere in a request, before any handler sees them.

    PostgreSQL cannot store NUL in text, and no name, email or path needs one; refusing them in
    one place beats a check on every field.
    """
    if "\x00" in request.scope["path"] or b"%00" in request.scope.get("query_string", b""):
        raise UserError(ErrorCode.NUL_CHARACTER, "The URL contains a NUL character.")
    if request.method in ("POST", "PUT", "PATCH") and b"\\u0000" in await request.body():
        raise UserError(
            ErrorCode.NUL_CHARACTER, "The request body contains a NUL character (\\u0000)."
        )


async def refuse_undecodable_json(request: Request[Any, Any, Any]) -> None:
    """Refuse a JSON body that is not UTF-8 text, which is all JSON may be (RFC 8259).

    msgspec raises `UnicodeDecodeError` for invalid UTF-8 inside a JSON string, not the
    `DecodeError` Litestar turns into a 400, so the handler's decoding would end in a 500.
    """
    if request.method not in ("POST", "PUT", "PATCH") or not takes_json(request):
        return
    try:
        (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            ErrorCode.INVALID_REQUEST,
            f"The request body is not valid JSON: byte {exc.start} is not UTF-8.",
        ) from None


def _log_unavailable(request: Request[Any, Any, Any], exc: LogBusError) -> Response[dict[str, str]]:
    # Redis being away is an outage to wait out, not a bug: 503, never the generic 500.
    log.warning("log bus unavailable", extra={"path": request.url.path, "error": str(exc)})
    return _user_error(
        request,
        UserError(
            ErrorCode.LOG_UNAVAILABLE,
            "The build log cannot be read right now; try again in a few seconds.",
            retry_after=5,
        ),
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.exception("unhandled error", extra={"path": request.url.path, "method": request.method})
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong on our side; it has been logged. Try again later.",
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    UserError: _user_error,
    LogBusError: _log_unavailable,
    ValidationException: _validation_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
