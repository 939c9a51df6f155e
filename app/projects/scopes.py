"""Env var scopes: which builds a value is for (`production`, `preview`, or one branch's
previews), read from what people type, and which scopes a build of a target and branch gets.

A scope is stored as two typed columns (`EnvVar.scope`, `EnvVar.git_branch`); the label
`branch:<name>` exists only at the edges (API, CLI, dashboard, `BuildSpec.env_scopes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.errors import ErrorCode, UserError
from app.refs import is_ref_name

BRANCH_PREFIX = "branch:"


class ScopeKind(StrEnum):
    """`EnvVar.scope`: stored values, never renamed."""

    PRODUCTION = "production"
    PREVIEW = "preview"
    BRANCH = "branch"
    """Preview deployments of one branch (`EnvVar.git_branch`); they override `preview`."""


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    kind: ScopeKind
    branch: str = ""
    """The branch of a `branch` scope; "" for the others."""

    @property
    def label(self) -> str:
        """`production`, `preview` or `branch:<name>`: how people and builds name it."""
        return f"{BRANCH_PREFIX}{self.branch}" if self.kind is ScopeKind.BRANCH else self.kind


PRODUCTION = Scope(ScopeKind.PRODUCTION)
PREVIEW = Scope(ScopeKind.PREVIEW)
DEFAULT_SCOPES = (PRODUCTION, PREVIEW)
"""A value set without a scope is for every environment, as on Vercel."""


def branch_scope(branch: str) -> Scope:
    """The scope of one branch's previews; a name git would refuse is refused."""
    if not is_ref_name(branch):
        raise UserError(
            ErrorCode.ENV_BRANCH_INVALID,
            f"{branch!r} is not a valid branch name for an env var scope "
            "(no spaces, ~ ^ : ? * [ \\, '..', or a leading '-')",
        )
    return Scope(ScopeKind.BRANCH, branch)


def parse_scope(text: str) -> Scope:
    """`production`, `preview` or `branch:<name>` → its `Scope`."""
    if text.startswith(BRANCH_PREFIX):
        return branch_scope(text.removeprefix(BRANCH_PREFIX))
    if text in (ScopeKind.PRODUCTION, ScopeKind.PREVIEW):
        return Scope(ScopeKind(text))
    raise UserError(
        ErrorCode.ENV_SCOPE_INVALID,
        f"{text!r} is not an env var scope: use production, preview or branch:<name>",
    )


def parse_scopes(texts: Iterable[str]) -> tuple[Scope, ...]:
    """Each label parsed, duplicates dropped, in a stable order (production, preview,
    branches by name)."""
    return tuple(sorted({parse_scope(text) for text in texts}, key=_order))


def _order(scope: Scope) -> tuple[int, str]:
    return (list(ScopeKind).index(scope.kind), scope.branch)


def ordered(scopes: Iterable[Scope]) -> tuple[Scope, ...]:
    return tuple(sorted(set(scopes), key=_order))


def for_build(target: str, branch: str) -> tuple[Scope, ...]:
    """The scopes a build reads, weakest first (a later one overrides an earlier one): a
    production build gets production's; a preview gets preview's, then its branch's."""
    if target == ScopeKind.PRODUCTION:
        return (PRODUCTION,)
    return (PREVIEW, Scope(ScopeKind.BRANCH, branch)) if branch else (PREVIEW,)
