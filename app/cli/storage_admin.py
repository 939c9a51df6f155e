"""The operator's storage command: `scalemesh storage sweep [--dry-run] [--all]`, which talks to
storage and the database directly (`app.retention.sweeper`). Its arguments are in `app.cli`."""

from __future__ import annotations

import argparse

from app import database
from app.cli.common import run_coroutine, start_logging
from app.retention.sweeper import Sweep, sweep
from app.settings import Settings
from app.storage.choice import storage_from_settings


def storage_sweep(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    start_logging(settings, admin=True)
    storage = storage_from_settings(settings.storage)

    async def runs() -> list[Sweep]:
        await database.require_migrated(database.make_engine(settings.database))
        done: list[Sweep] = []
        cursor = ""
        while True:
            found = await sweep(storage, cursor, batch=args.batch, dry_run=args.dry_run)
            done.append(found)
            cursor = found.cursor
            if not cursor or not args.all:
                return done

    found = run_coroutine(runs())
    verb = "would delete" if args.dry_run else "deleted"
    orphans = [key for run in found for key in run.orphans]
    for prefix in sorted({p for run in found for p in run.orphan_prefixes}):
        print(f"{verb} {prefix}")
    examined = sum(run.examined for run in found)
    print(f"{verb} {len(orphans)} objects of {examined} examined")
    if found[-1].cursor:
        print(f"stopped at {found[-1].cursor}; run again (or with --all) to go on")
    return 0
