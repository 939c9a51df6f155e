"""The Redis log stream's format, shared by every writer, and what the bus reads it with.

Entries and their ids, events as payloads, replies of either protocol, redis-py's errors as
`LogBusError`s, and the script that puts back a log Redis lost.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.logs.bus import LogBusError, without_seq
from builder.events import LogEvent

STREAM_FIELD = "e"
"""The one field of each stream entry: the event as JSON, without `seq`.

Cross-process contract with the builder's Redis sink: `XADD <log_stream(id)> MAXLEN ~ 100000
0-* e <json>`. The `0-*` id makes Redis number entries 0-1, 0-2, ... atomically across every
writer, so the entry id *is* the seq.
"""


RESTORE_SCRIPT = """
local journal = {}
for i = 1, #ARGV - 1, 2 do
  journal[ARGV[i]] = ARGV[i + 1]
end
local existing = redis.call('XRANGE', KEYS[1], '-', '+')
redis.call('DEL', KEYS[1])
for i = 1, #ARGV - 1, 2 do
  redis.call('XADD', KEYS[1], '0-' .. ARGV[i], 'e', ARGV[i + 1])
end
local added = {}
for _, entry in ipairs(existing) do
  local seq = string.match(entry[1], '-(%d+)$')
  local fields = entry[2]
  for j = 1, #fields - 1, 2 do
    if fields[j] == 'e' and journal[seq] ~= fields[j + 1] then
      added[#added + 1] = redis.call('XADD', KEYS[1], '0-*', 'e', fields[j + 1])
      added[#added + 1] = fields[j + 1]
    end
  end
end
return added
"""
"""Put a journal back into a stream Redis lost: the journal's entries under their own seqs,
then whatever was written since the loss, numbered after them; an entry already there under
its journal seq is not added twice (a second restore changes nothing). One script, so no
writer slips in between."""


class Unreachable(LogBusError):
    """Redis did not answer, even after the client's retries."""


@contextlib.contextmanager
def redis_errors(doing: str) -> Iterator[None]:
    """Keep redis-py's exceptions inside the log bus."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unreachable(f"{doing}: {type(exc).__name__}: {exc}") from None
    except RedisError as exc:
        raise LogBusError(f"{doing}: {type(exc).__name__}: {exc}") from None


def text(value: bytes | str) -> str:
    # The client may or may not decode responses; both must work.
    return value.decode() if isinstance(value, bytes) else value


def seq_of(entry_id: Any) -> int:
    """`0-17` → 17."""
    return int(text(entry_id).partition("-")[2])


def payload(event: LogEvent) -> str:
    return json.dumps(without_seq(event), separators=(",", ":"), ensure_ascii=False)


def xread_entries(reply: Any) -> list[Any]:
    """The entries of a one-stream XREAD reply, whichever protocol the client speaks."""
    if isinstance(reply, dict):  # RESP3: {stream: [entries]}
        return [entry for batches in reply.values() for batch in batches for entry in batch]
    return [entry for _stream, entries in reply for entry in entries]  # RESP2
