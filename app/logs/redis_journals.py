"""What the Redis log bus wrote to each live log, so a Redis that came back empty gets it back.

A journal per log, oldest entry first, under the seqs Redis gave; all of them together stay
within a byte limit and idle ones are let go, so memory stays bounded whatever the build rate.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

JOURNAL_IDLE_S = 3600.0
"""A journal nobody wrote to for this long is let go (its log was archived by another replica)."""
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
"""What the journals of all logs may hold together. A replica whose builds are archived by
another keeps their journals until they idle out; past this, the logs written to longest ago
lose theirs first."""


@dataclass(eq=False)
class Journal:
    """What this bus wrote to one log, under the seqs Redis gave it, oldest first."""

    entries: deque[tuple[int, str]] = field(default_factory=deque)
    size: int = 0
    """The length of its payloads, counted towards `Journals.max_bytes`."""
    written_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while this process writes to the log (or puts it back)."""

    @property
    def last_seq(self) -> int:
        return self.entries[-1][0] if self.entries else 0


class Journals:
    """Every log's journal: at most `max_events` entries each, `max_bytes` in all."""

    def __init__(
        self,
        max_events: int,
        idle_s: float = JOURNAL_IDLE_S,
        max_bytes: int = MAX_JOURNAL_BYTES,
    ) -> None:
        self._max_events = max_events
        self._idle_s = idle_s
        self._max_bytes = max_bytes
        self._bytes = 0
        self._journals: dict[str, Journal] = {}

    def of(self, deployment_id: str, now: float) -> Journal:
        """The log's journal, made when new; written to `now`."""
        journal = self._journals.get(deployment_id)
        if journal is None:
            # A new log is a good moment to let go of those whose deployments ended elsewhere.
            idle = [
                key for key, kept in self._journals.items() if now - kept.written_at > self._idle_s
            ]
            for key in idle:
                self.let_go(key)
            journal = self._journals[deployment_id] = Journal()
        journal.written_at = now
        return journal

    def keep(self, journal: Journal, seq: int, payload: str) -> None:
        """Journal one written entry; the oldest goes once the log holds `max_events`."""
        if len(journal.entries) >= self._max_events:
            _, oldest = journal.entries.popleft()
            journal.size -= len(oldest)
            self._bytes -= len(oldest)
        journal.entries.append((seq, payload))
        journal.size += len(payload)
        self._bytes += len(payload)

    def let_go(self, deployment_id: str) -> None:
        journal = self._journals.pop(deployment_id, None)
        if journal is not None:
            self._bytes -= journal.size

    def bound(self) -> None:
        """Let go of the journals written to longest ago until all fit `max_bytes`; one a
        write holds right now stays (its writer is still counting on it)."""
        if self._bytes <= self._max_bytes:
            return
        by_age = sorted(self._journals.items(), key=lambda kept: kept[1].written_at)
        for key, journal in by_age:
            if self._bytes <= self._max_bytes:
                return
            if not journal.lock.locked():
                self.let_go(key)
