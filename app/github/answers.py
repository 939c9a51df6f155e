"""Read GitHub's answers: what the vendors raise becomes `GitHubError`, JSON the fields we use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pydantic
from githubkit.exception import (
    GitHubException,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.response import Response

from app.github.api import GitHubError
from app.github.waits import wait_of

TIMEOUT = 10.0
"""Seconds for each request to GitHub (connect, read, write and pool wait each); the client
sets it, and a timeout's message names it."""


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn whatever githubkit, httpx or pydantic raise into `GitHubError`, naming `action`."""
    try:
        yield
    except RequestFailed as exc:
        raw = exc.response.raw_response
        status, text = raw.status_code, error_text(raw)
        # Read here rather than taken from githubkit's RateLimitExceeded, which misses a bare
        # 429 and a rate-limit 403 that carry no header (GitHub's docs: wait a minute then).
        retry_after = wait_of(status, raw.headers, text, datetime.now(UTC))
        message = f"{action}: GitHub answered {status}{f': {text}' if text else ''}"
        raise GitHubError(message, status, retry_after=retry_after) from exc
    except RequestTimeout as exc:
        raise GitHubError(f"{action}: GitHub did not answer within {TIMEOUT:g} s") from exc
    except (RequestError, GitHubException, httpx.HTTPError, pydantic.ValidationError) as exc:
        # RequestError wraps what httpx raised; the others are a safety net (auth set-up, a
        # request body githubkit's schema refuses) so that no vendor exception gets past here.
        cause = exc.exc if isinstance(exc, RequestError) else exc
        raise GitHubError(f"{action}: {describe(cause)}") from exc


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def error_text(response: httpx.Response) -> str:
    """GitHub's own one-line explanation from an error body, if it gave one."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return ""
    return message[:200] if isinstance(message, str) else ""


# Responses are read as plain JSON, taking only the fields we use: githubkit's models follow
# GitHub's latest schema and can reject a real answer (LIBRARY-NOTES §0.2); a comment that was
# created but failed to parse would be created again by the next retry.


def parse_object(response: Response[Any], action: str) -> dict[str, Any]:
    try:
        data = response.raw_response.json()
    except ValueError:
        raise GitHubError(f"{action}: GitHub answered with something other than JSON") from None
    if not isinstance(data, dict):
        raise GitHubError(f"{action}: GitHub answered with a {type(data).__name__}, not an object")
    return data


def parse_list(response: Response[Any], action: str) -> list[dict[str, Any]]:
    try:
        data = response.raw_response.json()
    except ValueError:
        raise GitHubError(f"{action}: GitHub answered with something other than JSON") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise GitHubError(f"{action}: GitHub answered with something other than a list")
    return data


def parse_id(response: Response[Any], action: str) -> int:
    return object_id(parse_object(response, action), action)


def object_id(data: dict[str, Any], action: str) -> int:
    value = data.get("id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise GitHubError(f"{action}: GitHub's answer has no id")
    return value
