"""Wait for the event itself: poll a condition until it holds, with a deadline only for failure.

A test never sleeps a fixed time hoping something happened, and never asserts how long it
took: it waits for what it needs, and the deadline (generous, for a busy two-core machine)
only turns a hang into a failure with a message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

WAIT_S = 30.0
"""Default deadline: long enough never to be reached by a passing test on a loaded machine."""
_INTERVAL_S = 0.01


class _Deadline:
    """When waiting for `condition` gives up, and what the failure then says."""

    def __init__(
        self, condition: Callable[..., object], within: float, what: str | Callable[[], str]
    ) -> None:
        self._at = time.monotonic() + within
        self._condition, self._within, self._what = condition, within, what

    def check(self) -> None:
        if time.monotonic() > self._at:
            described = self._what() if callable(self._what) else self._what
            name = getattr(self._condition, "__name__", "the condition")
            raise AssertionError(f"{described or name} did not happen within {self._within} s")


def wait_until(
    condition: Callable[[], T],
    *,
    within: float = WAIT_S,
    interval: float = _INTERVAL_S,
    what: str | Callable[[], str] = "",
) -> T:
    """Poll `condition` until it returns something truthy, and return that."""
    deadline = _Deadline(condition, within, what)
    while not (result := condition()):
        deadline.check()
        time.sleep(interval)
    return result


async def eventually(
    condition: Callable[[], T],
    *,
    within: float = WAIT_S,
    interval: float = _INTERVAL_S,
    what: str | Callable[[], str] = "",
) -> T:
    """`wait_until` inside an event loop: the loop keeps running between two checks."""
    deadline = _Deadline(condition, within, what)
    while not (result := condition()):
        deadline.check()
        await asyncio.sleep(interval)
    return result


async def eventually_async(
    condition: Callable[[], Awaitable[T]],
    *,
    within: float = WAIT_S,
    interval: float = _INTERVAL_S,
    what: str | Callable[[], str] = "",
) -> T:
    """`eventually` for a condition that must itself await (a query, a request)."""
    deadline = _Deadline(condition, within, what)
    while not (result := await condition()):
        deadline.check()
        await asyncio.sleep(interval)
    return result


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def gone(pid: int, within: float = WAIT_S) -> bool:
    """Whether `pid` ends within `within` seconds (a sent SIGKILL lands asynchronously)."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def signal_pending(pid: int, signum: int) -> bool:
    """Whether `signum`, sent to process `pid`, is still waiting to be delivered."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    for line in status.splitlines():
        if line.startswith("ShdPnd:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False
