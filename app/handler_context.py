"""What webhook handlers may use, built once by the app's lifespan and passed to each handler."""

from __future__ import annotations

from dataclasses import dataclass

from app.aliases import AliasAnnouncer
from app.database import AnyEngine
from app.pipeline import Pipeline
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class HandlerContext:
    settings: Settings
    engine: AnyEngine
    pipeline: Pipeline
    announce: AliasAnnouncer
