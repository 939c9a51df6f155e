"""A custom domain as frozen records: its row (`DomainRecord`), the states and check codes stored
in it, and the view every reader gets (`DomainView`: API, dashboard, CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.domains.rules import CHALLENGE_LABEL, WILDCARD, display_name
from app.settings import Settings
from app.tables import Domain


class DomainState(StrEnum):
    PENDING = "pending"
    """Ownership not proven yet: the proxy serves nothing for it."""
    VERIFIED = "verified"


class Routing(StrEnum):
    """Whether the name points at us, as of the last check (`Domain.routing`)."""

    UNKNOWN = "unknown"
    OK = "ok"
    MISCONFIGURED = "misconfigured"


class CheckCode(StrEnum):
    """Why the last check was not all well (`Domain.check_code`). Stored: never rename one."""

    TXT_MISSING = "txt_missing"
    """No TXT record at `_scalemesh-challenge.<name>` (or the name does not exist)."""
    TXT_WRONG = "txt_wrong"
    """TXT records there, none holding the domain's token."""
    NAME_NOT_FOUND = "name_not_found"
    """The name itself does not exist in DNS (NXDOMAIN)."""
    NO_ADDRESS = "no_address"
    """The name exists but has no CNAME, A or AAAA record."""
    CNAME_ELSEWHERE = "cname_elsewhere"
    """A CNAME to another host, whose addresses are not ours either."""
    ADDRESSES_NOT_OURS = "addresses_not_ours"
    """A/AAAA records, some not among `SCALEMESH_PUBLIC_IPS`."""
    DNS_TIMEOUT = "dns_timeout"
    """The resolvers did not answer in time."""
    DNS_FAILED = "dns_failed"
    """The resolvers answered with an error (SERVFAIL, refused, a broken answer)."""


@dataclass(frozen=True, slots=True)
class Instruction:
    """One DNS record the user should create."""

    type: str
    """`TXT`, `CNAME`, `A` or `AAAA`."""
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class DomainRecord:
    id: int
    name: str
    project_id: int
    git_branch: str | None
    redirect_to: str | None
    token: str
    verified_at: datetime | None
    routing: Routing
    check_code: CheckCode | None
    check_detail: str
    checked_at: datetime | None
    next_check_at: datetime | None
    check_attempts: int
    created_at: datetime
    updated_at: datetime

    COLUMNS = (
        Domain._meta.primary_key,
        Domain.name,
        Domain.project,
        Domain.git_branch,
        Domain.redirect_to,
        Domain.token,
        Domain.verified_at,
        Domain.routing,
        Domain.check_code,
        Domain.check_detail,
        Domain.checked_at,
        Domain.next_check_at,
        Domain.check_attempts,
        Domain.created_at,
        Domain.updated_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> DomainRecord:
        code = row["check_code"]
        return cls(
            id=int(row["id"]),
            name=str(row["name"]),
            project_id=int(row["project"]),
            git_branch=row["git_branch"],
            redirect_to=row["redirect_to"],
            token=str(row["token"]),
            verified_at=row["verified_at"],
            routing=Routing(row["routing"]),
            check_code=None if code is None else CheckCode(code),
            check_detail=str(row["check_detail"]),
            checked_at=row["checked_at"],
            next_check_at=row["next_check_at"],
            check_attempts=int(row["check_attempts"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def state(self) -> DomainState:
        return DomainState.PENDING if self.verified_at is None else DomainState.VERIFIED

    @property
    def challenge(self) -> str:
        return f"{CHALLENGE_LABEL}.{self.name.removeprefix(WILDCARD)}"


@dataclass(frozen=True, slots=True)
class DomainView:
    """A domain as its project's members see it, with what DNS should hold."""

    domain: DomainRecord
    project: str
    """The project's slug."""
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str:
        return self.domain.name

    @property
    def display_name(self) -> str:
        return display_name(self.domain.name)

    @property
    def state(self) -> DomainState:
        return self.domain.state

    @property
    def url(self) -> str:
        return f"https://{self.domain.name}"

    @classmethod
    def of(cls, domain: DomainRecord, project: str, settings: Settings) -> DomainView:
        return cls(domain, project, instructions(domain, settings))


def instructions(domain: DomainRecord, settings: Settings) -> tuple[Instruction, ...]:
    """The records that make the domain work: the TXT proving ownership while it is pending,
    then a CNAME to us or, for a name that cannot be a CNAME (an apex), A/AAAA records."""
    records: list[Instruction] = []
    if domain.verified_at is None:
        records.append(Instruction("TXT", domain.challenge, domain.token))
    records.append(Instruction("CNAME", domain.name, settings.domains.cname_target))
    records.extend(
        Instruction("AAAA" if ":" in address else "A", domain.name, address)
        for address in settings.domains.public_ips
    )
    return tuple(records)
