"""Migrations on a database filled by the previous schema's code: forward, backward, forward.

Each test builds its own database at 0003 (`tests.support.migration_fixture`) on SQLite and on
PostgreSQL, and reads back what the engine stored: rows, columns, indexes and constraints.
"""
