"""How a GitHub report that failed is tried again: one rule for deployment and promotion reports.

A transient failure (network, 5xx, rate limit) is due again `FIRST_RETRY` seconds later, then
twice as long each time up to `MAX_RETRY`, or after the wait GitHub asked for if that is
longer. A permanent one (GitHub refused the request itself: a 4xx such as 422) is stamped
`failed_at` and never tried again. Either way the row keeps why, for people to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.github.api import GitHubError
from app.github.waits import retry_delay

CLAIM_TTL = 120.0
"""A claim older than this was left by a replica that died mid-report, and may be taken over."""
FIRST_RETRY = 2.0
MAX_RETRY = 300.0
ERROR_LENGTH = 500
"""Characters of a failure's text kept on the row."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed report as its row keeps it."""

    error: str
    status: int | None
    """GitHub's HTTP status, when GitHub answered."""
    next_at: datetime | None
    """When to try again; None when it is not to be tried again."""
    failed_at: datetime | None
    """When GitHub refused it for good; None when it is to be tried again."""

    @classmethod
    def of(cls, exc: Exception, failures: int, now: datetime) -> Failure:
        """`exc` ended the `failures`th attempt in a row, at `now`."""
        github = exc if isinstance(exc, GitHubError) else None
        error = (str(exc) or type(exc).__name__)[:ERROR_LENGTH]
        status = None if github is None else github.status
        if github is not None and github.permanent:
            return cls(error, status, None, now)
        delay = retry_delay(failures, FIRST_RETRY, MAX_RETRY, exc)
        return cls(error, status, now + timedelta(seconds=delay), None)
