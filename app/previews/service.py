"""Protected previews, the API's half: vouch for a signed-in viewer, keep the bypass secret.

`PreviewService.hand_off` answers the proxy's redirect: the hostname's alias row (or verified
custom domain) names the project, the viewer must be allowed to see it (`Access`), and the
browser is sent back to the deployment's `/_scalemesh/auth` with a 60 s token bound to that
hostname (and, for a custom domain, that project). The bypass secret
is made here, shown once, and stored only as its keyed hash (`app.preview_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from app import preview_tokens as tokens
from app.aliases import AliasAnnouncer
from app.custom_hosts import verified_domain
from app.errors import ErrorCode, UserError
from app.hostnames import alias_name, full_hostname
from app.projects.access import Access, Role
from app.projects.service import refresh_aliases
from app.settings import Settings
from app.tables import Alias, Project


@dataclass(frozen=True, slots=True)
class BypassSecret:
    """A project's new bypass secret, in the clear this once."""

    slug: str
    secret: str


class PreviewService:
    def __init__(self, settings: Settings, announce: AliasAnnouncer, access: Access) -> None:
        self.settings = settings
        self.announce = announce
        self.access = access
        self.key = tokens.preview_keys(
            (key.id, key.secret.reveal()) for key in settings.require_preview_keys().keys
        )

    async def hand_off(self, user_id: int, host: str, next_path: str) -> str:
        """Where to send a viewer of `host` who is signed in as `user_id`: the deployment's
        `/_scalemesh/auth` with a fresh token. Refused like a missing project otherwise."""
        name = alias_name(host, self.settings.root_domain)
        project_id = None if name is None else await _project_of(name)
        if name is None or project_id is None:
            raise UserError(ErrorCode.DEPLOYMENT_NOT_FOUND, f"Nothing is deployed at {host!r}.")
        await self.access.project_by_id(user_id, project_id)
        bound = tokens.binding(name, project_id)
        token = tokens.sign(self.key, tokens.HANDOFF, bound, tokens.HANDOFF_SECONDS)
        query = urlencode({"token": token, "next": next_path})
        base = self.settings.deployment_url_template.format(
            host=full_hostname(name, self.settings.root_domain)
        )
        return f"{base}{tokens.AUTH_PATH}?{query}"

    async def create_bypass(self, user_id: int, slug: str) -> BypassSecret:
        """Make (or replace) the project's bypass secret; only its keyed hash is kept."""
        project = await self.access.project_for(user_id, slug, need=Role.ADMIN)
        secret = tokens.new_bypass_secret()
        await self._store(project.id, tokens.bypass_hash(self.key, secret))
        return BypassSecret(slug=project.slug, secret=secret)

    async def remove_bypass(self, user_id: int, slug: str) -> None:
        project = await self.access.project_for(user_id, slug, need=Role.ADMIN)
        await self._store(project.id, None)

    async def _store(self, project_id: int, stored: str | None) -> None:
        await Project.update({Project.bypass_hash: stored}).where(
            Project._meta.primary_key == project_id
        )
        # The proxies cache the hash with each hostname: make them read it again.
        await self.announce(await refresh_aliases(project_id))


async def _project_of(name: str) -> int | None:
    """The project whose hostname `name` is: an alias label's, or a verified custom domain's
    (its own row, else its wildcard's), as the proxy resolves it."""
    if "." not in name:
        row = await Alias.select(Alias.project).where(Alias.hostname == name).first()
        return None if row is None else int(row["project"])
    domain = await verified_domain(name)
    return None if domain is None else domain.project_id
