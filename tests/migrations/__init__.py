"""Migrations on a database filled by the previous schema's code: forward, backward, forward.

Each test gets its own database at 0003 (`tests.support.migration_fixture`), or migrated further,
on SQLite and on PostgreSQL, restored from this process's snapshots where it can be
(`tests.support.migration_snapshots`), and reads back what the engine stored: rows, columns,
indexes and constraints.
"""
