"""Where the GitHub App is installed: installations and the repositories each one covers.

Kept current by the `installation` and `installation_repositories` webhooks (and by every push,
which carries the repository's clone URL and current name). A project builds from GitHub, and
reports there, only while it is bound to the repository's id (`app.projects.binding`) and an
installation that is not suspended covers that id (`covered_id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.database import AnyEngine, same_name, write_transaction
from app.github import events
from app.settings import Settings
from app.tables import Installation, Repository


@dataclass(frozen=True, slots=True)
class Covered:
    """A repository the app may build and report on now."""

    installation_id: int
    github_id: int
    """GitHub's id of the repository, which survives renames and transfers."""
    full_name: str
    clone_url: str
    private: bool

    COLUMNS = (
        Repository.installation.installation_id,
        Repository.github_id,
        Repository.full_name,
        Repository.clone_url,
        Repository.private,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> Covered:
        return cls(
            installation_id=int(row["installation.installation_id"]),
            github_id=int(row["github_id"]),
            full_name=str(row["full_name"]),
            clone_url=str(row["clone_url"]),
            private=bool(row["private"]),
        )


def github_web_url(settings: Settings) -> str:
    """github.com, or the GitHub Enterprise host (`SCALEMESH_GITHUB_WEB_URL`)."""
    return settings.github_web_url


def install_url(settings: Settings) -> str | None:
    """Where a user installs the App on more repositories; None when GitHub is off."""
    if settings.github is None:
        return None
    return f"{github_web_url(settings)}/apps/{settings.github.app_slug}/installations/new"


async def _installation_row(engine: AnyEngine, installation: events.Installation) -> int:
    """The row id of the installation, created (not suspended) when first heard of."""
    found = await _installation_row_id(installation.id)
    if found is not None:
        return found
    await Installation.insert(
        Installation(
            installation_id=installation.id,
            account_login=installation.account.login,
            account_type=installation.account.type,
        )
    ).on_conflict(target=Installation.installation_id, action="DO NOTHING")
    inserted = await _installation_row_id(installation.id)
    assert inserted is not None  # noqa: S101 - inserted (or raced in) just above
    return inserted


async def _installation_row_id(installation_id: int) -> int | None:
    ids: list[int] = await (
        Installation.select(Installation._meta.primary_key)
        .where(Installation.installation_id == installation_id)
        .output(as_list=True)
    )
    return int(ids[0]) if ids else None


async def _upsert_repository(
    installation_row: int, github_id: int, full_name: str, clone_url: str, private: bool
) -> None:
    await Repository.insert(
        Repository(
            github_id=github_id,
            full_name=full_name,
            clone_url=clone_url,
            private=private,
            installation=installation_row,
        )
    ).on_conflict(
        target=Repository.github_id,
        action="DO UPDATE",
        values=[
            Repository.full_name,
            Repository.clone_url,
            Repository.private,
            Repository.installation,
        ],
    )


async def record_installation(
    engine: AnyEngine,
    settings: Settings,
    installation: events.Installation,
    repositories: list[events.RepositoryRef],
) -> None:
    """The App was installed: it is active, on these repositories."""
    async with write_transaction(engine):
        row = await _installation_row(engine, installation)
        await Installation.update(
            {Installation.suspended: False, Installation.updated_at: datetime.now(UTC)}
        ).where(Installation._meta.primary_key == row)
        await _add(settings, row, repositories)


async def add_repositories(
    engine: AnyEngine,
    settings: Settings,
    installation: events.Installation,
    repositories: list[events.RepositoryRef],
) -> None:
    """Repositories were added to an installation."""
    if repositories:
        async with write_transaction(engine):
            await _add(settings, await _installation_row(engine, installation), repositories)


async def _add(
    settings: Settings, installation_row: int, repositories: list[events.RepositoryRef]
) -> None:
    web = github_web_url(settings)
    for repository in repositories:
        await _upsert_repository(
            installation_row,
            repository.id,
            repository.full_name,
            f"{web}/{repository.full_name}.git",
            repository.private,
        )


async def remove_repositories(engine: AnyEngine, github_ids: list[int]) -> None:
    if github_ids:
        async with write_transaction(engine):
            await Repository.delete().where(Repository.github_id.is_in(github_ids))


async def remove_installation(engine: AnyEngine, installation_id: int) -> None:
    """The App was uninstalled: its repositories go with it (cascade)."""
    async with write_transaction(engine):
        await Installation.delete().where(Installation.installation_id == installation_id)


async def set_suspended(
    engine: AnyEngine, installation: events.Installation, *, suspended: bool
) -> None:
    async with write_transaction(engine):
        row = await _installation_row(engine, installation)
        await Installation.update(
            {Installation.suspended: suspended, Installation.updated_at: datetime.now(UTC)}
        ).where(Installation._meta.primary_key == row)


async def saw_repository(
    engine: AnyEngine, installation_id: int, account: str, repository: events.Repository
) -> None:
    """A push or pull request named this repository: remember its clone URL and privacy.

    Read first: nearly every delivery repeats what is stored, and a read costs no write lock.
    """
    row = await (
        Repository.select(*Covered.COLUMNS).where(Repository.github_id == repository.id).first()
    )
    seen = Covered(
        installation_id,
        repository.id,
        repository.full_name,
        repository.clone_url,
        repository.private,
    )
    if row is not None and Covered.of(row) == seen:
        return
    installation = events.Installation(id=installation_id, account=events.Account(login=account))
    async with write_transaction(engine):
        installation_row = await _installation_row(engine, installation)
        await _upsert_repository(
            installation_row,
            repository.id,
            repository.full_name,
            repository.clone_url,
            repository.private,
        )


async def covered(full_name: str) -> Covered | None:
    """The installation that covers `owner/name` now, unless none does or it is suspended."""
    row = await (
        Repository.select(*Covered.COLUMNS)
        .where(
            same_name("scalemesh_repository.full_name", full_name)
            & (Repository.installation.suspended == False)  # noqa: E712 - SQL, not Python
        )
        .first()
    )
    return None if row is None else Covered.of(row)


async def covered_id(repository_id: int) -> Covered | None:
    """The installation that covers the repository with GitHub's id `repository_id` now, unless
    none does or it is suspended. The id survives renames and transfers; a name may be reused."""
    row = await (
        Repository.select(*Covered.COLUMNS)
        .where(
            (Repository.installation.suspended == False)  # noqa: E712 - SQL, not Python
            & (Repository.github_id == repository_id)
        )
        .first()
    )
    return None if row is None else Covered.of(row)


async def ensure_covered(
    engine: AnyEngine,
    settings: Settings,
    installation: events.InstallationRef | None,
    repository: events.Repository,
) -> Covered | None:
    """The active installation that covers the repository, if any; remembered first when the
    delivery says something new of it (a first sight, a rename, a new clone URL)."""
    found = await covered_id(repository.id)
    if installation is None:
        return found
    seen = Covered(
        installation.id,
        repository.id,
        repository.full_name,
        repository.clone_url,
        repository.private,
    )
    if found != seen:
        owner = repository.full_name.split("/", 1)[0]
        await saw_repository(engine, installation.id, owner, repository)
        found = await covered_id(repository.id)
    return found
