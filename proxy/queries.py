"""The alias lookup's reads of the database: an alias label's row, a hostname's verified custom
domain, and the version of both tables (what a proxy without Redis polls).

Read-only, as the proxy's database role allows (`deploy/k8s/proxy-db-role.sql`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.hostnames import domain_candidates, domain_label
from app.tables import Alias, Domain
from proxy.target import Target


@dataclass(frozen=True, slots=True)
class VerifiedDomain:
    """The verified `Domain` row that serves a hostname: by its own name, or its wildcard's."""

    name: str
    """The row's name: the hostname itself, or `*.<parent>`."""
    project_id: int
    label: str
    """The alias label it follows (`app.hostnames.domain_label`)."""
    redirect_to: str | None


async def alias_target(name: str) -> Target | None:
    """What alias label (or hostname) `name` serves, or None when no alias has that name."""
    row = await Alias.select(*Target.COLUMNS).where(Alias.hostname == name).first()
    return None if row is None else Target.of(name, row)


async def verified_domain(hostname: str) -> VerifiedDomain | None:
    """The verified domain serving `hostname` (its own row before its parent's wildcard), or
    None: a pending domain serves nothing, as an unknown one."""
    candidates = domain_candidates(hostname)
    rows = await Domain.select(
        Domain.name,
        Domain.project.as_alias("project_id"),
        Domain.project.slug.as_alias("slug"),
        Domain.git_branch,
        Domain.redirect_to,
    ).where(Domain.name.is_in(list(candidates)) & Domain.verified_at.is_not_null())
    if not rows:
        return None
    row = min(rows, key=lambda row: candidates.index(row["name"]))
    return VerifiedDomain(
        name=row["name"],
        project_id=int(row["project_id"]),
        label=domain_label(row["slug"], row["git_branch"]),
        redirect_to=row["redirect_to"] or None,
    )


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
