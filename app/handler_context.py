"""What webhook handlers may use, built once by the app's lifespan and passed to each handler."""

from __future__ import annotations

from dataclasses import dataclass

from app.aliases import AliasAnnouncer
from app.database import AnyEngine
from app.github.api import GitHubApi
from app.pipeline import Pipeline
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class HandlerContext:
    settings: Settings
    engine: AnyEngine
    pipeline: Pipeline
    announce: AliasAnnouncer
    github: GitHubApi | None = None
    """The App's client, to ask GitHub what is true now (None: GitHub is not configured)."""
