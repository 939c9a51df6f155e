"""The API's answers as the client reads them: only the fields it uses, typed and checked."""

from __future__ import annotations

import msgspec


class TokenAnswer(msgspec.Struct):
    token: str


class UserAnswer(msgspec.Struct):
    email: str


class PinAnswer(msgspec.Struct):
    deployment: str
    since: str
    by: str | None


class ProjectAnswer(msgspec.Struct):
    slug: str
    production_url: str
    repo: str
    git_url: str
    env: list[str]
    """Names only."""
    preview_ttl_days: int | None = None
    """Days a preview may go without a push; None: the repository's `previews.ttlDays`."""
    production_pin: PinAnswer | None = None
    """Set after a rollback: production stays on that deployment until a promote or unpin."""


class EnvVarAnswer(msgspec.Struct):
    name: str
    scopes: list[str]


class DeploymentAnswer(msgspec.Struct):
    id: str
    project: str
    state: str
    ref: str
    sha: str
    branch: str | None
    url: str
    aliases: list[str]
    """Every URL that points at it now, its own included."""
    log_url: str


class UnpinnedAnswer(msgspec.Struct):
    production: DeploymentAnswer | None


class DnsRecordAnswer(msgspec.Struct):
    """A record the domain's owner must create at their DNS provider."""

    type: str
    name: str
    value: str


class DomainAnswer(msgspec.Struct):
    name: str
    display_name: str
    project: str
    state: str
    """`pending` until DNS proves ownership, then `verified`."""
    routing: str
    """Whether the name points at Scale Mesh: `unknown`, `ok` or `misconfigured`."""
    url: str
    instructions: list[DnsRecordAnswer]
    redirect_to: str | None = None
    git_branch: str | None = None
    check_code: str | None = None
    check_detail: str | None = None


class DomainsAnswer(msgspec.Struct):
    domains: list[DomainAnswer]
