"""The alias lookup's reads of the database: an alias label's row, a hostname's verified custom
domain (`app.custom_hosts`, shared with the API), and the version of both tables (what a proxy
without Redis polls).

Read-only, as the proxy's database role allows (`deploy/k8s/proxy-db-role.sql`).
"""

from __future__ import annotations

from typing import Any

from app.custom_hosts import verified_domain
from app.tables import Alias
from proxy.target import Target

__all__ = ["alias_target", "verified_domain", "version"]


async def alias_target(name: str) -> Target | None:
    """What alias label (or hostname) `name` serves, or None when no alias has that name."""
    row = await Alias.select(*Target.COLUMNS).where(Alias.hostname == name).first()
    return None if row is None else Target.of(name, row)


_VERSION = (
    "SELECT (SELECT count(*) FROM scalemesh_alias) AS aliases,"
    " (SELECT max(updated_at) FROM scalemesh_alias) AS aliases_at,"
    " (SELECT count(*) FROM scalemesh_domain) AS domains,"
    " (SELECT max(updated_at) FROM scalemesh_domain) AS domains_at"
)


async def version() -> tuple[Any, ...]:
    """What changes whenever an alias or a domain does; one query for both tables.

    The counts catch deletions (a domain removed, a project's aliases cascaded), the newest
    stamps catch moves and changes. Compared only for equality, so the engine's timestamp type
    is irrelevant.
    """
    rows = await Alias.raw(_VERSION)
    row = rows[0]
    return (row["aliases"], row["aliases_at"], row["domains"], row["domains_at"])
