"""A project's build environment variables: checked, sealed at rest, never shown again, one
value per scope (`app.projects.scopes`), and the ones a build gets.

Each value is sealed (`app.sealing`) with AES-256-GCM under a key derived from
`SCALEMESH_SECRET_KEY`, with `<project id>:<name>` as associated data, so a sealed value copied
to another project or another name fails to open instead of leaking into the wrong build. The
scope is not in the associated data, so migration 0011 could copy a value to `preview` without
the key.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import Any

from app.errors import ErrorCode, UserError
from app.projects.scopes import DEFAULT_SCOPES, Scope, ScopeKind, for_build, ordered
from app.sealing import Box, Unopenable
from app.settings_parts import KeyRing
from app.tables import EnvVar

MAX_NAME = 255
MAX_VALUE = 64 * 1024
MAX_VARIABLES = 200
"""Names per project."""
MAX_VALUES = 1000
"""Values per project, counting each scope of each name."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The builder sets these itself or strips them; a project may not smuggle them in.
_RESERVED_PREFIXES = ("SCALEMESH_", "AWS_")
_RESERVED_NAMES = frozenset({"CI", "HOME", "PATH"})


@dataclass(frozen=True, slots=True)
class StoredVar:
    """An env var in one scope as stored: its value still sealed."""

    project_id: int
    name: str
    scope: Scope
    sealed: bytes = field(repr=False)

    COLUMNS = (EnvVar.project, EnvVar.name, EnvVar.scope, EnvVar.git_branch, EnvVar.value_sealed)

    @classmethod
    def of(cls, row: dict[str, Any]) -> StoredVar:
        return cls(
            int(row["project"]),
            str(row["name"]),
            Scope(ScopeKind(row["scope"]), str(row["git_branch"])),
            bytes(row["value_sealed"]),
        )


@dataclass(frozen=True, slots=True)
class BuildEnv:
    """What one build gets: each name's value, and the scope it came from."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    scopes: dict[str, str] = field(default_factory=dict)
    """Name → `production`, `preview` or `branch:<name>`."""


class SealError(RuntimeError):
    """A sealed value does not open: wrong key, or moved to another project or name."""


class Sealer:
    """Seals and opens env var values with a key derived from the platform's secret key."""

    def __init__(self, keys: KeyRing) -> None:
        self._box = Box(keys, b"scalemesh env vars v1")

    def seal(self, project_id: int, name: str, value: str) -> bytes:
        return self._box.seal(_aad(project_id, name), value)

    def open(self, project_id: int, name: str, blob: bytes) -> str:
        try:
            return self._box.open(_aad(project_id, name), blob)
        except Unopenable as exc:
            if exc.reason == "version":
                raise SealError(f"env var {name} has an unknown seal version") from None
            raise SealError(f"env var {name} does not open with this key") from None


def _aad(project_id: int, name: str) -> bytes:
    return f"{project_id}:{name}".encode()


def check_changes(changes: Mapping[str, str | None]) -> None:
    """Refuse bad names and values before anything is written."""
    for name, value in changes.items():
        if not _NAME.match(name) or len(name) > MAX_NAME:
            raise UserError(
                ErrorCode.INVALID_ENV,
                f"env var name {name!r} is not valid: use letters, digits and _, "
                "not starting with a digit",
            )
        if name in _RESERVED_NAMES or name.startswith(_RESERVED_PREFIXES):
            raise UserError(
                ErrorCode.INVALID_ENV,
                f"env var name {name!r} is reserved by Scale Mesh; pick another",
            )
        if value is not None and len(value.encode()) > MAX_VALUE:
            raise UserError(
                ErrorCode.INVALID_ENV, f"env var {name} is larger than {MAX_VALUE // 1024} KiB"
            )
        if value is not None and "\x00" in value:
            raise UserError(ErrorCode.INVALID_ENV, f"env var {name} contains a NUL character")


def _in_scope(scope: Scope) -> Any:
    return (EnvVar.scope == scope.kind) & (EnvVar.git_branch == scope.branch)


def _any_of(scopes: Iterable[Scope]) -> Any:
    return reduce(operator.or_, map(_in_scope, scopes))


async def set_value(
    sealer: Sealer, project_id: int, name: str, value: str, scopes: Iterable[Scope]
) -> None:
    """Give `name` this value in each scope (its other scopes keep theirs). Run inside a
    transaction: the limits are checked after the write, so a refusal rolls it back."""
    check_changes({name: value})
    chosen = ordered(scopes) or DEFAULT_SCOPES
    mine = (EnvVar.project == project_id) & (EnvVar.name == name)
    await EnvVar.delete().where(mine & _any_of(chosen))
    now = datetime.now(UTC)
    await EnvVar.insert(
        *(
            EnvVar(
                project=project_id,
                name=name,
                scope=scope.kind.value,
                git_branch=scope.branch,
                value_sealed=sealer.seal(project_id, name, value),
                updated_at=now,
            )
            for scope in chosen
        )
    )
    await _check_limits(project_id)


async def unset(project_id: int, name: str, scopes: Iterable[Scope] = ()) -> int:
    """Delete `name` from these scopes (from all of them when none is given); how many
    values went."""
    where = (EnvVar.project == project_id) & (EnvVar.name == name)
    chosen = ordered(scopes)
    if chosen:
        where &= _any_of(chosen)
    gone = await EnvVar.delete().where(where).returning(EnvVar.scope)
    return len(gone)


async def _check_limits(project_id: int) -> None:
    rows = await EnvVar.select(EnvVar.name).where(EnvVar.project == project_id)
    if len({row["name"] for row in rows}) > MAX_VARIABLES:
        raise UserError(
            ErrorCode.INVALID_ENV, f"a project may have at most {MAX_VARIABLES} env vars"
        )
    if len(rows) > MAX_VALUES:
        raise UserError(
            ErrorCode.INVALID_ENV,
            f"a project may have at most {MAX_VALUES} env var values across its scopes",
        )


async def apply_changes(sealer: Sealer, project_id: int, changes: Mapping[str, str | None]) -> None:
    """Set each name to its value for every environment (production and preview); a value of
    None deletes the name from every scope. Run inside a transaction."""
    check_changes(changes)
    for name, value in changes.items():
        if value is None:
            await unset(project_id, name)
        else:
            await set_value(sealer, project_id, name, value, DEFAULT_SCOPES)


async def scopes(project_ids: list[int]) -> dict[int, dict[str, tuple[Scope, ...]]]:
    """Per project, each env var name (sorted) and its scopes; values are never read here."""
    found: dict[int, dict[str, list[Scope]]] = {project_id: {} for project_id in project_ids}
    if not project_ids:
        return {}
    rows = await (
        EnvVar.select(EnvVar.project, EnvVar.name, EnvVar.scope, EnvVar.git_branch)
        .where(EnvVar.project.is_in(project_ids))
        .order_by(EnvVar.name)
    )
    for row in rows:
        scope = Scope(ScopeKind(row["scope"]), str(row["git_branch"]))
        found[int(row["project"])].setdefault(str(row["name"]), []).append(scope)
    return {
        project_id: {name: ordered(them) for name, them in names.items()}
        for project_id, names in found.items()
    }


async def load(sealer: Sealer, project_id: int, target: str, branch: str) -> BuildEnv:
    """Open the env vars a build of `target` on `branch` gets: production's for production;
    preview's for a preview, overridden by its branch's."""
    wanted = for_build(target, branch)
    rows = await EnvVar.select(*StoredVar.COLUMNS).where(
        (EnvVar.project == project_id) & _any_of(wanted)
    )
    env = BuildEnv()
    for stored in sorted(map(StoredVar.of, rows), key=lambda s: wanted.index(s.scope)):
        env.values[stored.name] = sealer.open(project_id, stored.name, stored.sealed)
        env.scopes[stored.name] = stored.scope.label
    return env
