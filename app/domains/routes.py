"""The custom domains API (`/projects/{slug}/domains`): a thin controller over `DomainService`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.domains.records import DomainView
from app.domains.service import DomainChanges, DomainService, NewDomain
from app.projects.routes import actor
from app.users.http import provide_user
from app.users.records import CurrentUser

# Unicode names are welcome (stored as punycode); the service explains a bad one.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
Branch = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class DomainIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    """`www.example.com`, `bücher.example`; `*.example.com` (admins only)."""
    redirect_to: Name | None = None
    """Another domain of the project: this one answers 308 to it, path and query kept."""
    git_branch: Branch | None = None
    """Serve this branch's newest deployment instead of production."""


class DomainPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; null clears one."""

    redirect_to: Name | msgspec.UnsetType | None = msgspec.UNSET
    git_branch: Branch | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> DomainChanges:
        given = {
            name: value
            for name, value in msgspec.structs.asdict(self).items()
            if value is not msgspec.UNSET
        }
        return DomainChanges(**given)


class InstructionOut(msgspec.Struct):
    type: str
    """`TXT`, `CNAME`, `A` or `AAAA`."""
    name: str
    value: str


class DomainOut(msgspec.Struct):
    name: str
    """As stored: lower-case ASCII (punycode)."""
    display_name: str
    """As people read it (Unicode)."""
    project: str
    state: str
    """`pending` (serves nothing until the TXT record proves ownership) or `verified`."""
    routing: str
    """Whether the name points at us: `unknown`, `ok` or `misconfigured`."""
    redirect_to: str | None
    git_branch: str | None
    check_code: str | None
    """Why the last check was not all well (`txt_missing`, `cname_elsewhere`, …), or null."""
    check_detail: str
    """What DNS returned and what it should return."""
    checked_at: datetime | None
    next_check_at: datetime | None
    verified_at: datetime | None
    url: str
    instructions: list[InstructionOut]
    """The DNS records to create: the TXT record while pending, then a CNAME (or, for an
    apex name, the A/AAAA records)."""

    @classmethod
    def of(cls, view: DomainView) -> DomainOut:
        domain = view.domain
        return cls(
            name=view.name,
            display_name=view.display_name,
            project=view.project,
            state=view.state.value,
            routing=domain.routing.value,
            redirect_to=domain.redirect_to,
            git_branch=domain.git_branch,
            check_code=None if domain.check_code is None else domain.check_code.value,
            check_detail=domain.check_detail,
            checked_at=domain.checked_at,
            next_check_at=domain.next_check_at,
            verified_at=domain.verified_at,
            url=view.url,
            instructions=[
                InstructionOut(type=item.type, name=item.name, value=item.value)
                for item in view.instructions
            ],
        )


class DomainList(msgspec.Struct):
    domains: list[DomainOut]


class DomainController(Controller):
    path = "/projects/{slug:str}/domains"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @post("/", status_code=201, summary="Add a custom domain to a project")
    async def add(
        self,
        slug: FromPath[str],
        data: JSONBody[DomainIn],
        user: NamedDependency[CurrentUser],
        domains: NamedDependency[DomainService],
    ) -> DomainOut:
        new = NewDomain(data.name, redirect_to=data.redirect_to, git_branch=data.git_branch)
        return DomainOut.of(await domains.add(actor(user), slug, new))

    @get("/", summary="A project's custom domains")
    async def index(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        domains: NamedDependency[DomainService],
    ) -> DomainList:
        return DomainList([DomainOut.of(view) for view in await domains.list_for(user.id, slug)])

    @get("/{name:str}", summary="One custom domain, with its DNS status")
    async def show(
        self,
        slug: FromPath[str],
        name: FromPath[str],
        user: NamedDependency[CurrentUser],
        domains: NamedDependency[DomainService],
    ) -> DomainOut:
        return DomainOut.of(await domains.get(user.id, slug, name))

    @post("/{name:str}/verify", status_code=200, summary="Check a custom domain's DNS now")
    async def verify(
        self,
        slug: FromPath[str],
        name: FromPath[str],
        user: NamedDependency[CurrentUser],
        domains: NamedDependency[DomainService],
    ) -> DomainOut:
        return DomainOut.of(await domains.verify(actor(user), slug, name))

    @patch("/{name:str}", summary="Change where a custom domain leads")
    async def change(
        self,
        slug: FromPath[str],
        name: FromPath[str],
        data: JSONBody[DomainPatch],
        user: NamedDependency[CurrentUser],
        domains: NamedDependency[DomainService],
    ) -> DomainOut:
        return DomainOut.of(await domains.change(actor(user), slug, name, data.changes()))

    @delete("/{name:str}", status_code=204, summary="Remove a custom domain")
    async def remove(
        self,
        slug: FromPath[str],
        name: FromPath[str],
        user: NamedDependency[CurrentUser],
        domains: NamedDependency[DomainService],
    ) -> None:
        await domains.remove(actor(user), slug, name)
