"""What the server and admin commands share: `CommandError`, logging, the event loop.

`app.cli` turns a `CommandError` into one line on stderr and exit code 1. This module stays
light (no database, no server at run time): the entry point imports it for every command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from app import logconfig

if TYPE_CHECKING:
    import uvicorn

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


def run_coroutine(coroutine: Coroutine[Any, Any, _T], config: uvicorn.Config | None = None) -> _T:
    # Production serving gets the event loop uvicorn would pick (uvloop when installed);
    # admin commands and `dev` are fine with asyncio's own.
    loop_factory = config.get_loop_factory() if config is not None else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)
