"""A proxy replica's alias lookup against a real database: the data, a query count, a clock.

Each `proxy.lookup.Lookup` a test makes stands for one proxy replica; several on one database
must agree on what a moved alias now serves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from app import database
from app.deployments.lifecycle import DeploymentState
from app.settings import Settings
from app.tables import Deployment, Domain, Project, User

ROOT = "example.test"
"""The root domain of the lookups: `shop.example.test` names the alias `shop`."""


@dataclass
class World:
    engine: database.AnyEngine
    project_id: int
    queries: list[str]

    async def deployment(
        self,
        state: DeploymentState = DeploymentState.READY,
        *,
        project_id: int | None = None,
        **values: Any,
    ) -> str:
        deployment_id = str(uuid.uuid4())
        project = self.project_id if project_id is None else project_id
        await Deployment.insert(
            Deployment(id=deployment_id, project=project, state=state, **values)
        )
        return deployment_id

    async def domain(
        self,
        name: str,
        *,
        verified: bool = True,
        project_id: int | None = None,
        git_branch: str | None = None,
        redirect_to: str | None = None,
    ) -> None:
        """A `Domain` row as the domains service leaves it: verified (or pending), stamped."""
        stamp = datetime.now(UTC)
        await Domain.insert(
            Domain(
                name=name,
                project=self.project_id if project_id is None else project_id,
                git_branch=git_branch,
                redirect_to=redirect_to,
                token="t" * 32,
                verified_at=stamp if verified else None,
                updated_at=stamp,
            )
        )

    async def project(self, slug: str) -> int:
        """Another tenant's project, with an owner of its own."""
        user = await User.insert(User(email=f"{slug}@example.com", password_hash="x"))
        row = await Project.insert(
            Project(slug=slug, name=slug, owner=user[0]["id"], git_url=f"https://x/{slug}.git")
        )
        return int(row[0]["id"])


async def make_world(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    """A bound database with one user and one project `shop`; counts the queries sent to it."""
    engine = database.make_engine(settings.database)
    database.bind(engine)
    queries: list[str] = []
    # The engine classes use __slots__, so the count wraps the class's method.
    real = type(engine).run_querystring

    async def counting(self: Any, querystring: Any, in_pool: bool = True) -> Any:
        queries.append(str(querystring))
        return await real(self, querystring, in_pool=in_pool)

    monkeypatch.setattr(type(engine), "run_querystring", counting)
    user = (await User.insert(User(email="ada@example.com", password_hash="x")))[0]["id"]
    project = await Project.insert(
        Project(slug="shop", name="Shop", owner=user, git_url="https://example.com/shop.git")
    )
    return World(engine, int(project[0]["id"]), queries)


class FakeClock:
    """A clock that moves only when a test moves it (`clock.now += 0.5`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
