"""Reading and checking the retention settings: how long each kind of deployment is kept.

- `SCALEMESH_PREVIEW_TTL_AFTER_CLOSE`: days a closed pull request's (or deleted branch's)
  previews stay up before they are torn down; 0 tears them down at once;
- `SCALEMESH_RETENTION_CANCELED_DAYS`, `_ERRORED_DAYS`, `_PREVIEW_DAYS`, `_PRODUCTION_DAYS`:
  Vercel's defaults (30, 90, 180, 365); 0 keeps that kind for ever.

Each is a number of days (a fraction is allowed: `0.5` is twelve hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from app.settings_parsing import EnvReader
from app.settings_parts import SettingsError

RETENTION_VARIABLES = (
    "SCALEMESH_PREVIEW_TTL_AFTER_CLOSE",
    "SCALEMESH_RETENTION_CANCELED_DAYS",
    "SCALEMESH_RETENTION_ERRORED_DAYS",
    "SCALEMESH_RETENTION_PREVIEW_DAYS",
    "SCALEMESH_RETENTION_PRODUCTION_DAYS",
)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    ttl_after_close: timedelta = timedelta(days=7)
    canceled: timedelta | None = timedelta(days=30)
    """None: kept for ever (the setting is 0)."""
    errored: timedelta | None = timedelta(days=90)
    preview: timedelta | None = timedelta(days=180)
    production: timedelta | None = timedelta(days=365)


def parse_retention(env: EnvReader) -> RetentionSettings:
    def days(name: str, default: float) -> timedelta:
        raw = env.get(name, f"{default:g}")
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number of days, not {raw!r}") from None
        if not 0 <= value <= 36500:
            raise SettingsError(name, f"must be between 0 and 36500 days, not {raw}")
        return timedelta(days=value)

    def kept(name: str, default: float) -> timedelta | None:
        value = days(name, default)
        return value or None

    return RetentionSettings(
        ttl_after_close=days("SCALEMESH_PREVIEW_TTL_AFTER_CLOSE", 7),
        canceled=kept("SCALEMESH_RETENTION_CANCELED_DAYS", 30),
        errored=kept("SCALEMESH_RETENTION_ERRORED_DAYS", 90),
        preview=kept("SCALEMESH_RETENTION_PREVIEW_DAYS", 180),
        production=kept("SCALEMESH_RETENTION_PRODUCTION_DAYS", 365),
    )
