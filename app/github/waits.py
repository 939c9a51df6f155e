"""How long GitHub asked us to wait before calling again, read from one of its answers.

GitHub says it three ways: `Retry-After` (seconds, or an HTTP date), `x-ratelimit-reset` (a
Unix time) when `x-ratelimit-remaining` is 0, or nothing at all on a 429 or a rate-limit 403,
for which its docs say to wait at least a minute. Every answer carries `x-ratelimit-reset`, so it
counts only once the remaining calls are 0. `retry_delay` is the backoff of whoever tries a
failed call again (the reporter, the webhook worker), never sooner than such a wait.
See https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from app.github.api import GitHubError

log = logging.getLogger(__name__)

DEFAULT_WAIT = 60.0
"""Seconds to wait after a rate limit that did not say for how long."""

APP = None
"""The caller key of the App's own calls (JWT-signed: token mints)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """A `Retry-After` value (delay-seconds or HTTP-date) as seconds from `now`; None when it
    is neither."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def wait_of(status: int, headers: Mapping[str, str], message: str, now: datetime) -> float | None:
    """Seconds GitHub asked us to wait after answering `status` with `headers` and `message`
    (its error text), or None when it asked for no wait."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        seconds = retry_after_seconds(retry_after, now)
        if seconds is not None:
            return seconds
    if status not in (403, 429):
        return None
    reset = headers.get("x-ratelimit-reset", "").strip()
    if headers.get("x-ratelimit-remaining", "").strip() == "0" and reset.isdigit():
        return max(0.0, int(reset) - now.timestamp())
    if status == 429 or "rate limit" in message.lower():
        return DEFAULT_WAIT
    return None


def retry_delay(failures: int, first: float, last: float, exc: BaseException) -> float:
    """Seconds before trying again after `failures` failures in a row, the last with `exc`:
    `first`, doubling up to `last`, and never sooner than a wait GitHub asked for."""
    doubled = min(last, first * (1 << min(failures - 1, 20)))
    asked = exc.retry_after if isinstance(exc, GitHubError) else None
    return max(doubled, asked or 0.0)


def normalised_retry_after(value: str, now: datetime) -> str | None:
    """A `Retry-After` value in whole seconds, as githubkit reads it (it takes only an integer
    and raises on a date); None when the value means nothing."""
    seconds = retry_after_seconds(value, now)
    return None if seconds is None else str(math.ceil(seconds))


class Holds:
    """When GitHub allows each caller's next call: an installation id, or `APP`.

    GitHub limits each installation and the App separately, so a wait one asked for holds back
    only that caller's calls. `clock` tells the time.
    """

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self._not_before: dict[int | None, datetime] = {}

    def check(self, caller: int | None, action: str) -> None:
        """Refuse, without asking GitHub, a call it asked us to hold back still."""
        until = self._not_before.get(caller)
        if until is None:
            return
        remaining = (until - self.clock()).total_seconds()
        if remaining <= 0:
            del self._not_before[caller]
            return
        raise GitHubError(
            f"{action}: GitHub asked us to wait; {math.ceil(remaining)} s to go",
            retry_after=remaining,
        )

    def note(self, caller: int | None, exc: GitHubError, action: str) -> None:
        """Hold back `caller` for the wait `exc` carries, if it carries one."""
        if exc.retry_after is None:
            return
        until = self.clock() + timedelta(seconds=exc.retry_after)
        self._not_before[caller] = max(until, self._not_before.get(caller, until))
        log.warning(
            "github asked us to wait",
            extra={"installation_id": caller, "wait": exc.retry_after, "action": action},
        )
