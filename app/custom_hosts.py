"""Which verified custom domain serves a hostname: the one query the proxy (to serve it) and the
API (to sign a protected domain's hand-off) must answer alike.

Reads only the schema; the proxy may import it (it never imports `app.domains`).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.hostnames import domain_candidates, domain_label
from app.tables import Domain


@dataclass(frozen=True, slots=True)
class VerifiedDomain:
    """The verified `Domain` row that serves a hostname: by its own name, or its wildcard's."""

    name: str
    """The row's name: the hostname itself, or `*.<parent>`."""
    project_id: int
    label: str
    """The alias label it follows (`app.hostnames.domain_label`)."""
    redirect_to: str | None


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
