"""Make the Redis clients the API and the proxy use, so that a Redis restart costs no command.

After Redis restarts, every pooled connection is dead, and redis-py finds that out only when
it sends a command ("Connection closed by server"). Without a retry, that first command fails
wherever it happens to be: the result event of a deployment, a log line, an alias
announcement. Each client made here reconnects and retries a command that failed on a
connection error or a timeout, backing off for about `RETRY_WINDOW_S` in all, so a restart
shorter than that goes unnoticed. A longer outage still reaches the caller as an error.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRIES = 5
"""Tries after the first, after waits of 0.2, 0.4, 0.8, 1 and 1 s (`ExponentialBackoff`)."""
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 1.0
RETRY_WINDOW_S = 3.4
"""The sum of the waits above: how long a Redis restart may take without a command failing."""
HEALTH_CHECK_INTERVAL_S = 30
"""A connection idle this long is pinged before use, so a dead one is replaced up front."""
RETRIED_ERRORS: tuple[type[RedisError], ...] = (RedisConnectionError, RedisTimeoutError)


def redis_client(url: str, *, retries: int = RETRIES) -> Redis:
    """A client for `url` that reconnects and retries through a Redis restart.

    Retrying a command whose reply was lost may run it twice: an `XADD` may then store a log
    line twice, which a reader shows twice rather than not at all.
    """
    return Redis.from_url(
        url,
        retry=Retry(
            ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S),
            retries,
            supported_errors=RETRIED_ERRORS,
        ),
        retry_on_error=list(RETRIED_ERRORS),
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )
