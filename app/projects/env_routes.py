"""The env vars API (`/projects/{slug}/env`): each name's scopes listed, a value set for some
scopes, a name deleted from some or all; a thin controller over `ProjectService`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from app.projects import envvars
from app.projects.routes import actor
from app.projects.scopes import Scope, parse_scopes
from app.projects.service import ProjectService
from app.users.http import provide_user
from app.users.records import CurrentUser

ScopeLabel = Annotated[
    str,
    msgspec.Meta(
        max_length=300,
        description="`production`, `preview`, or `branch:<name>` (that branch's previews)",
    ),
]


class EnvVarIn(msgspec.Struct, forbid_unknown_fields=True):
    value: Annotated[str, msgspec.Meta(max_length=envvars.MAX_VALUE)]
    scopes: list[ScopeLabel] = []
    """Where the value applies; none given: production and preview. Other scopes of the name
    keep their values."""


class EnvVarOut(msgspec.Struct):
    name: str
    scopes: list[str]
    """`production`, `preview`, `branch:<name>`; values are write-only, never shown."""

    @classmethod
    def of(cls, name: str, scopes: tuple[Scope, ...]) -> EnvVarOut:
        return cls(name=name, scopes=[scope.label for scope in scopes])


class EnvController(Controller):
    path = "/projects/{slug:str}/env"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @get("/", summary="A project's env var names and their scopes")
    async def index(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> list[EnvVarOut]:
        details = await projects.get(user.id, slug)
        return [EnvVarOut.of(name, scopes) for name, scopes in details.env.items()]

    @put("/{name:str}", summary="Set an env var's value for some scopes")
    async def put(
        self,
        slug: FromPath[str],
        name: FromPath[str],
        data: JSONBody[EnvVarIn],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> EnvVarOut:
        """Needs push access. A build gets production's values (production), or preview's
        overridden by its branch's (a preview)."""
        scopes = parse_scopes(data.scopes)
        return EnvVarOut.of(
            name, await projects.set_env(actor(user), slug, name, data.value, scopes)
        )

    @delete("/{name:str}", status_code=204, summary="Delete an env var from some or all scopes")
    async def remove(
        self,
        slug: FromPath[str],
        name: FromPath[str],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
        scopes: Annotated[
            list[str] | None,
            QueryParameter(
                name="scope",
                description="a scope to delete it from (repeatable); none: every scope",
            ),
        ] = None,
    ) -> None:
        await projects.unset_env(actor(user), slug, name, parse_scopes(scopes or ()))
