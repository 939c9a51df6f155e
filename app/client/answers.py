"""The API's answers as the client reads them: only the fields it uses, typed and checked."""

from __future__ import annotations

import msgspec


class TokenAnswer(msgspec.Struct):
    token: str


class UserAnswer(msgspec.Struct):
    email: str


class ProjectAnswer(msgspec.Struct):
    slug: str
    production_url: str
    repo: str
    git_url: str
    env: list[str]
    """Names only."""


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
