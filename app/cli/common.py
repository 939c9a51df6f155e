"""What the server and admin commands share: `CommandError`, logging, the event loop, migrations.

`app.cli` turns a `CommandError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

from app import database, logconfig
from app.asgi import NotMigrated
from app.settings import Settings

_T = TypeVar("_T")


class CommandError(Exception):
    """The command cannot go on; the message says why and what to do, without a traceback."""


def start_logging(settings: Settings, *, admin: bool = False) -> None:
    level = settings.log_level
    if admin and level == "INFO":
        # An admin command's results are its output; info logs would only repeat them.
        level = "WARNING"
    logconfig.configure(level)


async def require_migrated(settings: Settings) -> None:
    engine = database.make_engine(settings.database)
    database.bind(engine)
    pending = await database.pending_migrations(engine)
    if pending:
        raise NotMigrated(
            f"the database is missing {len(pending)} migration(s); run `scalemesh migrate` first"
        )


def run_coroutine(coroutine: Coroutine[Any, Any, _T], config: uvicorn.Config | None = None) -> _T:
    # Production serving gets the event loop uvicorn would pick (uvloop when installed);
    # admin commands and `dev` are fine with asyncio's own.
    loop_factory = config.get_loop_factory() if config is not None else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)
