"""A project's build environment variables: checked, sealed at rest, and never shown again.

Each value is sealed (`app.sealing`) with AES-256-GCM under a key derived from
`SCALEMESH_SECRET_KEY`, with `<project id>:<name>` as associated data, so a sealed value copied
to another project or another name fails to open instead of leaking into the wrong build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.errors import ErrorCode, UserError
from app.sealing import Box, Unopenable
from app.settings_parts import KeyRing
from app.tables import EnvVar

MAX_NAME = 255
MAX_VALUE = 64 * 1024
MAX_VARIABLES = 200
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The builder sets these itself or strips them; a project may not smuggle them in.
_RESERVED_PREFIXES = ("SCALEMESH_", "AWS_")
_RESERVED_NAMES = frozenset({"CI", "HOME", "PATH"})


@dataclass(frozen=True, slots=True)
class StoredVar:
    """An env var as stored: its value still sealed."""

    project_id: int
    name: str
    sealed: bytes = field(repr=False)

    COLUMNS = (EnvVar.project, EnvVar.name, EnvVar.value_sealed)

    @classmethod
    def of(cls, row: dict[str, Any]) -> StoredVar:
        return cls(int(row["project"]), str(row["name"]), bytes(row["value_sealed"]))


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


async def apply_changes(sealer: Sealer, project_id: int, changes: Mapping[str, str | None]) -> None:
    """Set each name to its value; a value of None deletes the name. Run inside a transaction."""
    check_changes(changes)
    now = datetime.now(UTC)
    for name, value in changes.items():
        await EnvVar.delete().where((EnvVar.project == project_id) & (EnvVar.name == name))
        if value is not None:
            await EnvVar.insert(
                EnvVar(
                    project=project_id,
                    name=name,
                    value_sealed=sealer.seal(project_id, name, value),
                    updated_at=now,
                )
            )
    count = await EnvVar.count().where(EnvVar.project == project_id)
    if count > MAX_VARIABLES:
        raise UserError(
            ErrorCode.INVALID_ENV, f"a project may have at most {MAX_VARIABLES} env vars"
        )


async def names(project_ids: list[int]) -> dict[int, list[str]]:
    """Env var names per project, sorted; values are never read here."""
    found: dict[int, list[str]] = {project_id: [] for project_id in project_ids}
    if not project_ids:
        return found
    rows = await (
        EnvVar.select(*StoredVar.COLUMNS)
        .where(EnvVar.project.is_in(project_ids))
        .order_by(EnvVar.name)
    )
    for stored in map(StoredVar.of, rows):
        found[stored.project_id].append(stored.name)
    return found


async def load(sealer: Sealer, project_id: int) -> dict[str, str]:
    """Open every env var of a project, for handing to its build."""
    rows = await EnvVar.select(*StoredVar.COLUMNS).where(EnvVar.project == project_id)
    return {
        stored.name: sealer.open(project_id, stored.name, stored.sealed)
        for stored in map(StoredVar.of, rows)
    }
