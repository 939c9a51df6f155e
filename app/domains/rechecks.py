"""Checking a domain's DNS and storing what was found; the reconcile loop's re-checks.

`check_and_store` runs one check (`app.domains.checks`) and writes its result: a pending domain
whose TXT record proves ownership becomes verified (stamped and announced, so every proxy
serves it at once); the next check is scheduled by `next_check`:
- all well (verified, pointing at us): once a day, to notice DNS moving away;
- anything else (pending, misconfigured, DNS not answering): 30 s, doubling per failed check,
  at most an hour apart.

`DomainRechecks` is the reconcile loop's part: each pass claims at most `BATCH` due domains and
checks them, `CONCURRENT` at once. A claim moves the domain's `next_check_at` `LEASE` ahead on
the condition that it is still due, so two replicas never check the same domain at once, and a
replica that dies mid-check leaves it due again once the lease has passed. A pass runs beside
the loop's other work (`kick`), never holding it up: a lookup may take seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app import hostnames
from app.aliases import AliasAnnouncer
from app.deployments.transitions import report_again
from app.domains.checks import CheckResult, check_domain
from app.domains.dns import DnsLookup
from app.domains.records import DomainRecord, Routing
from app.settings_domains import DomainSettings
from app.tables import Alias, Deployment, Domain, Project

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
HEALTHY_RECHECK = timedelta(days=1)
BATCH = 20
"""Domains one pass checks at most."""
CONCURRENT = 10
"""Domains checked at once."""
LEASE = timedelta(minutes=2)
"""How long a claim holds: longer than a check can take (its lookups give up after seconds)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def next_check(healthy: bool, attempts: int, now: datetime) -> tuple[int, datetime]:
    """(failed checks in a row, when to check next) after a check."""
    if healthy:
        return 0, now + HEALTHY_RECHECK
    failed = attempts + 1
    delay = min(FIRST_RETRY * 2 ** min(failed - 1, 16), LONGEST_RETRY)
    return failed, now + delay


async def check_and_store(
    lookup: DnsLookup,
    settings: DomainSettings,
    announce: AliasAnnouncer,
    domain: DomainRecord,
    *,
    attempts: int | None = None,
    now: datetime | None = None,
) -> DomainRecord:
    """Check `domain` and store the result; `attempts` (default: the stored count) is how many
    checks failed before this one. Returns the domain as stored (as it was, if it was removed or
    taken over meanwhile)."""
    pending = domain.verified_at is None
    result = await check_domain(
        lookup, settings, domain.name, domain.challenge, domain.token if pending else None
    )
    now = now or now_utc()
    verifies = pending and bool(result.owned)
    healthy = (verifies or not pending) and result.routing is Routing.OK
    failed, due = next_check(healthy, domain.check_attempts if attempts is None else attempts, now)
    values: dict[Any, Any] = {
        Domain.routing: result.routing.value,
        Domain.check_code: None if result.code is None else result.code.value,
        Domain.check_detail: result.detail,
        Domain.checked_at: now,
        Domain.next_check_at: due,
        Domain.check_attempts: failed,
    }
    if verifies:
        values[Domain.verified_at] = now
        values[Domain.updated_at] = now
    # Only the row this check was about: not one removed, or claimed anew, meanwhile.
    rows = await (
        Domain.update(values)
        .where(Domain._meta.primary_key == domain.id, Domain.name == domain.name)
        .returning(*DomainRecord.COLUMNS)
    )
    _log(domain, result, verifies)
    if not rows:
        return domain
    if verifies:
        # Whatever it serves: only a production domain changes the report, and one report
        # more costs less than telling the kinds apart here.
        await announce([domain.name])
        await report_production_again(domain.project_id)
    return DomainRecord.of(rows[0])


async def report_production_again(project_id: int) -> None:
    """Report the deployment serving the project's production again: GitHub names a verified
    production domain as the environment's URL (`app.reporting.environments`), and without a
    new report it would show the old one until the next production deploy."""
    slug = await Project.select(Project.slug).where(Project._meta.primary_key == project_id).first()
    if slug is None:  # pragma: no cover - only a project deleted since the domain was stored
        return
    serving: list[str] = await (
        Alias.select(Alias.deployment)
        .where(
            (Alias.project == project_id)
            & (Alias.hostname == hostnames.production_label(str(slug["slug"])))
        )
        .output(as_list=True)
    )
    if serving:
        await Deployment.update(report_again()).where(
            Deployment._meta.primary_key == str(serving[0])
        )


def _log(domain: DomainRecord, result: CheckResult, verifies: bool) -> None:
    log.info(
        "domain verified" if verifies else "domain checked",
        extra={
            "domain": domain.name,
            "project_id": domain.project_id,
            "routing": result.routing.value,
            "check_code": None if result.code is None else result.code.value,
        },
    )


class DomainRechecks:
    """The due domains, claimed and checked a batch per pass (see the module docstring)."""

    def __init__(
        self,
        lookup: DnsLookup,
        settings: DomainSettings,
        announce: AliasAnnouncer,
        *,
        batch: int = BATCH,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.lookup = lookup
        self.settings = settings
        self.announce = announce
        self.batch = batch
        self.clock = clock
        self.running: asyncio.Task[int] | None = None

    def kick(self) -> None:
        """Start a pass beside the caller, unless one is still running."""
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(self.pass_logged())

    async def pass_logged(self) -> int:
        try:
            return await self.run_due()
        except Exception:
            # One bad pass (a database blip) must not stop the next.
            log.exception("domain checks failed")
            return 0

    async def run_due(self) -> int:
        """Claim and check up to `batch` due domains; return how many were checked."""
        now = self.clock()
        rows = await (
            Domain.select(*DomainRecord.COLUMNS)
            .where(Domain.next_check_at <= now)
            .order_by(Domain.next_check_at)
            .limit(self.batch)
        )
        claimed = [
            domain for domain in map(DomainRecord.of, rows) if await self._claim(domain, now)
        ]
        gate = asyncio.Semaphore(CONCURRENT)

        async def one(domain: DomainRecord) -> None:
            async with gate:
                await check_and_store(
                    self.lookup, self.settings, self.announce, domain, now=self.clock()
                )

        await asyncio.gather(*(one(domain) for domain in claimed))
        return len(claimed)

    async def _claim(self, domain: DomainRecord, now: datetime) -> bool:
        taken = await (
            Domain.update({Domain.next_check_at: now + LEASE})
            .where(Domain._meta.primary_key == domain.id, Domain.next_check_at <= now)
            .returning(Domain._meta.primary_key)
        )
        return bool(taken)

    async def aclose(self) -> None:
        """Stop a pass still running (the app is shutting down)."""
        if self.running is not None and not self.running.done():
            self.running.cancel()
            await asyncio.gather(self.running, return_exceptions=True)
