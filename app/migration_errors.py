"""Why the database cannot be used as it is: migrations failed, or are not applied yet.

Apart from `app.database` so that the `scalemesh` entry point can catch them without importing
the database drivers and Piccolo: most commands (the API client's) never touch a database.
"""

from __future__ import annotations


class MigrationError(RuntimeError):
    """Migrations could not be applied; the message says which and why."""


class NotMigrated(RuntimeError):
    """The database schema is behind the code."""
