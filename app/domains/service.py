"""Custom domains of a project: add, list, read, verify, change and remove them.

Scoped like the project's settings (`app.projects.access`): anyone who may see the project may
list and read its domains; adding, verifying, changing and removing need admin on it. A name
belongs to one project system-wide. A second claim is refused (`domain_taken`) with the token
that proves ownership for the claimant; once `_scalemesh-challenge.<name>` holds it, claiming
again takes the name over: the old claim is removed and the new one is verified at once (DNS
just proved it). Every change a proxy must see (verified, redirect or branch changed, removed,
taken over) stamps `updated_at` and is announced after its commit (`AliasAnnouncer`).

Inputs are typed values (`Actor`, `NewDomain`, `DomainChanges`); answers are `DomainView`s.
Nothing here knows of HTTP: the dashboard calls these methods as the routes do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from app.aliases import AliasAnnouncer
from app.database import AnyEngine, write_transaction
from app.domains import rules
from app.domains.checks import check_ownership, check_routing
from app.domains.dns import DnsLookup
from app.domains.rechecks import check_and_store, next_check, report_production_again
from app.domains.records import DomainRecord, DomainView, Routing
from app.domains.rules import DomainName, check_allowed, check_branch, domain_name
from app.errors import ErrorCode, UserError
from app.projects.access import Access, Actor, Role
from app.projects.records import ProjectRecord
from app.settings import Settings
from app.tables import Domain

log = logging.getLogger(__name__)

MAX_DOMAINS = 100
"""Domains one project may have: each costs DNS lookups for as long as it is pending."""


class Keep(Enum):
    """A field of `DomainChanges` left out: it stays as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class NewDomain:
    name: str
    redirect_to: str | None = None
    """Another domain of the project: this one answers 308 to it."""
    git_branch: str | None = None
    """Serve this branch's alias instead of production."""


@dataclass(frozen=True, slots=True)
class DomainChanges:
    """What to change; None clears it."""

    redirect_to: str | Keep | None = KEEP
    git_branch: str | Keep | None = KEEP


def _not_found(name: str, slug: str) -> UserError:
    return UserError(ErrorCode.DOMAIN_NOT_FOUND, f"Project {slug!r} has no domain {name!r}.")


class DomainService:
    def __init__(
        self,
        settings: Settings,
        engine: AnyEngine,
        access: Access,
        lookup: DnsLookup,
        announce: AliasAnnouncer,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.access = access
        self.lookup = lookup
        self.announce = announce

    # --- reading ---------------------------------------------------------------------------

    async def list_for(self, user_id: int, slug: str) -> list[DomainView]:
        """The project's domains, by name."""
        project = await self.access.project_for(user_id, slug, Role.PULL)
        rows = await (
            Domain.select(*DomainRecord.COLUMNS)
            .where(Domain.project == project.id)
            .order_by(Domain.name)
        )
        return [self._view(DomainRecord.of(row), project) for row in rows]

    async def get(self, user_id: int, slug: str, name: str) -> DomainView:
        project = await self.access.project_for(user_id, slug, Role.PULL)
        return self._view(await self._domain(project, name), project)

    # --- changing ---------------------------------------------------------------------------

    async def add(self, actor: Actor, slug: str, new: NewDomain) -> DomainView:
        """Claim `new.name` for the project, pending until DNS proves ownership (the reconcile
        loop checks it soon, `verify` at once). Nothing is stored on a refusal."""
        project = await self.access.project_for(actor.id, slug, Role.ADMIN)
        name = domain_name(new.name)
        check_allowed(name, self.settings, admin=actor.is_admin)
        branch = check_branch(new.git_branch)
        redirect = None
        if new.redirect_to is not None:
            redirect = await self._redirect_target(project, name.name, new.redirect_to)
        _one_of(redirect, branch)
        if await Domain.count().where(Domain.project == project.id) >= MAX_DOMAINS:
            raise UserError(
                ErrorCode.DOMAIN_LIMIT,
                f"A project may have at most {MAX_DOMAINS} domains; remove one you no longer "
                "use first.",
            )
        values = self._new_row(project, name, redirect, branch, datetime.now(UTC))
        rows = await (
            Domain.insert(Domain(**values))
            .on_conflict(action="DO NOTHING")
            .returning(*DomainRecord.COLUMNS)
        )
        if not rows:  # the name is claimed already
            if await Domain.exists().where(Domain.name == name.name, Domain.project == project.id):
                raise UserError(
                    ErrorCode.DOMAIN_TAKEN, f"{name.name} is already a domain of this project."
                )
            return await self._take_over(project, name, redirect, branch)
        log.info("domain added", extra={"domain": name.name, "project_id": project.id})
        return self._view(DomainRecord.of(rows[0]), project)

    async def verify(self, actor: Actor, slug: str, name: str) -> DomainView:
        """Check the domain's DNS now (and verify it if the TXT record proves ownership)."""
        project = await self.access.project_for(actor.id, slug, Role.ADMIN)
        domain = await self._domain(project, name)
        checked = await check_and_store(
            self.lookup, self.settings.domains, self.announce, domain, attempts=0
        )
        return self._view(checked, project)

    async def change(
        self, actor: Actor, slug: str, name: str, changes: DomainChanges
    ) -> DomainView:
        """Point the domain at a branch (or production again), or make it redirect."""
        project = await self.access.project_for(actor.id, slug, Role.ADMIN)
        domain = await self._domain(project, name)
        redirect, branch = domain.redirect_to, domain.git_branch
        if not isinstance(changes.git_branch, Keep):
            branch = check_branch(changes.git_branch)
        if not isinstance(changes.redirect_to, Keep):
            redirect = changes.redirect_to
            if redirect is not None:
                redirect = await self._redirect_target(project, domain.name, redirect)
        _one_of(redirect, branch)
        await Domain.update(
            {
                Domain.redirect_to: redirect,
                Domain.git_branch: branch,
                Domain.updated_at: datetime.now(UTC),
            }
        ).where(Domain._meta.primary_key == domain.id)
        await self.announce([domain.name])
        return self._view(await self._domain(project, domain.name), project)

    async def remove(self, actor: Actor, slug: str, name: str) -> None:
        """Remove the domain; every proxy stops serving it at once."""
        project = await self.access.project_for(actor.id, slug, Role.ADMIN)
        domain = await self._domain(project, name)
        pointing = await self._redirecting_to(project.id, domain.name)
        if pointing:
            raise UserError(
                ErrorCode.DOMAIN_IN_USE,
                f"{', '.join(pointing)} redirect{'s' if len(pointing) == 1 else ''} to "
                f"{domain.name}; remove that domain, or clear its redirect, first.",
            )
        await Domain.delete().where(Domain._meta.primary_key == domain.id)
        await self.announce([domain.name])
        log.info("domain removed", extra={"domain": domain.name, "project_id": project.id})

    # --- the claim ---------------------------------------------------------------------------

    def _new_row(
        self,
        project: ProjectRecord,
        name: DomainName,
        redirect: str | None,
        branch: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        keys = self.settings.require_secret_keys()
        return {
            "name": name.name,
            "project": project.id,
            "redirect_to": redirect,
            "git_branch": branch,
            "token": rules.challenge_token(
                keys, project.id, name.name, generation=project.generation
            ),
            "next_check_at": now,  # the next reconcile pass looks
            "created_at": now,
            "updated_at": now,
        }

    def _taken(self, project: ProjectRecord, name: DomainName) -> UserError:
        token = rules.challenge_token(
            self.settings.require_secret_keys(),
            project.id,
            name.name,
            generation=project.generation,
        )
        return UserError(
            ErrorCode.DOMAIN_TAKEN,
            f"{name.name} is a domain of another project. If it is yours, prove it: add a TXT "
            f"record {name.challenge} holding {token}, then add the domain again; the other "
            "project's claim is then removed.",
        )

    async def _take_over(
        self,
        project: ProjectRecord,
        name: DomainName,
        redirect: str | None,
        branch: str | None,
    ) -> DomainView:
        """The name is another project's: take it if DNS proves it is the claimant's."""
        keys = self.settings.require_secret_keys()
        proofs = rules.proof_tokens(keys, project.id, name.name, generation=project.generation)
        token = rules.challenge_token(keys, project.id, name.name, generation=project.generation)
        owned, _ = await check_ownership(self.lookup, name.challenge, token, proofs)
        if not owned:
            raise self._taken(project, name)
        routing, found = await check_routing(self.lookup, self.settings.domains, name.name)
        now = datetime.now(UTC)
        values = self._new_row(project, name, redirect, branch, now)
        attempts, due = next_check(routing is Routing.OK, 0, now)
        values |= {
            "verified_at": now,
            "routing": routing.value,
            "check_code": None if found.code is None else found.code.value,
            "check_detail": found.detail,
            "checked_at": now,
            "next_check_at": due,
            "check_attempts": attempts,
        }
        async with write_transaction(self.engine):
            old = await Domain.delete().where(Domain.name == name.name).returning(Domain.project)
            # The old project's domains that redirected to the name lose their target.
            cleared = await (
                Domain.update({Domain.redirect_to: None, Domain.updated_at: now})
                .where(Domain.redirect_to == name.name)
                .returning(Domain.name)
            )
            rows = await Domain.insert(Domain(**values)).returning(*DomainRecord.COLUMNS)
        await self.announce([name.name, *(str(row["name"]) for row in cleared)])
        await report_production_again(project.id)
        log.warning(
            "domain taken over",
            extra={
                "domain": name.name,
                "project_id": project.id,
                "from_project_id": [int(row["project"]) for row in old],
            },
        )
        return self._view(DomainRecord.of(rows[0]), project)

    # --- redirects ---------------------------------------------------------------------------

    async def _redirect_target(self, project: ProjectRecord, name: str, raw: str) -> str:
        """`raw` as the stored name of another domain of the project that serves (does not
        redirect itself), for `name` to redirect to; `name` must not be a target already."""
        try:
            target = domain_name(raw).name
        except UserError as exc:
            raise UserError(
                ErrorCode.DOMAIN_REDIRECT_INVALID, f"redirect_to: {exc.detail}"
            ) from None
        if target == name:
            raise UserError(
                ErrorCode.DOMAIN_REDIRECT_INVALID, "A domain cannot redirect to itself."
            )
        row = await (
            Domain.select(Domain.redirect_to)
            .where(Domain.project == project.id, Domain.name == target)
            .first()
        )
        if row is None or target.startswith(rules.WILDCARD):
            raise UserError(
                ErrorCode.DOMAIN_REDIRECT_INVALID,
                f"redirect_to must be another domain of this project (not a wildcard); "
                f"add {target} to it first.",
            )
        if row["redirect_to"] is not None:
            raise UserError(
                ErrorCode.DOMAIN_REDIRECT_INVALID,
                f"{target} redirects to {row['redirect_to']} itself; redirect to "
                f"{row['redirect_to']} instead.",
            )
        pointing = await self._redirecting_to(project.id, name)
        if pointing:
            raise UserError(
                ErrorCode.DOMAIN_REDIRECT_INVALID,
                f"{', '.join(pointing)} redirect{'s' if len(pointing) == 1 else ''} to {name}, "
                "so it must serve, not redirect.",
            )
        return target

    async def _redirecting_to(self, project_id: int, name: str) -> list[str]:
        names: list[str] = await (
            Domain.select(Domain.name)
            .where(Domain.project == project_id, Domain.redirect_to == name)
            .order_by(Domain.name)
            .output(as_list=True)
        )
        return names

    # --- helpers -----------------------------------------------------------------------------

    async def _domain(self, project: ProjectRecord, raw: str) -> DomainRecord:
        try:
            name = domain_name(raw).name
        except UserError:
            raise _not_found(raw, project.slug) from None
        row = await (
            Domain.select(*DomainRecord.COLUMNS)
            .where(Domain.project == project.id, Domain.name == name)
            .first()
        )
        if row is None:
            raise _not_found(name, project.slug)
        return DomainRecord.of(row)

    def _view(self, domain: DomainRecord, project: ProjectRecord) -> DomainView:
        return DomainView.of(domain, project.slug, self.settings)


def _one_of(redirect: str | None, branch: str | None) -> None:
    if redirect is not None and branch is not None:
        raise UserError(
            ErrorCode.DOMAIN_INVALID,
            "A domain either redirects (redirect_to) or serves a branch (git_branch), not both.",
        )
