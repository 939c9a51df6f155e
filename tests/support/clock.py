"""A clock that stands still until a test moves it, for code that takes a `clock` callable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FrozenClock:
    """Tells the same time (by default, the real time when it was made) until `advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
