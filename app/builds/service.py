"""What a running builder may ask of the API with its bootstrap token: its spec, once, and to
append its log events."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import timedelta

from app.builds.grants import UploadGrantError, UploadGrants
from app.builds.ingest import parse_batch
from app.builds.specs import CloneTokenDelayed, CloneTokenUnavailable, SpecMaker
from app.builds.tokens import BuildTokens, LogQuota
from app.errors import ErrorCode, UserError
from app.logs.bus import LogBus
from app.projects.envvars import SealError
from builder.spec import BuildLimits, BuildSpec

log = logging.getLogger(__name__)

MB = 1024 * 1024


class BuildChannel:
    """The spec fetch and the log ingest of builders that hold no platform secret."""

    def __init__(
        self,
        tokens: BuildTokens,
        specs: SpecMaker,
        grants: UploadGrants,
        bus: LogBus,
        limits: BuildLimits,
        grant_lifetime: timedelta,
    ) -> None:
        self.tokens = tokens
        self.specs = specs
        self.grants = grants
        self.bus = bus
        self.limits = limits
        self.grant_lifetime = grant_lifetime

    async def spec(self, deployment_id: str, token: str) -> BuildSpec:
        """The build's spec, with upload credentials for its own prefix when storage is S3.

        Made before the token's one fetch is used up, so a fetch that fails on the way (STS
        busy) can be tried again; of two fetches racing, one gets the spec.
        """
        await self.tokens.check_for_spec(deployment_id, token)
        try:
            spec = await self.specs.make(deployment_id)
        except SealError:
            raise UserError(
                ErrorCode.SPEC_UNAVAILABLE,
                "The project's env vars cannot be decrypted: was SCALEMESH_SECRET_KEY changed?",
            ) from None
        except CloneTokenDelayed as exc:
            # 503: the builder asks again (the token's one fetch is not used up yet).
            raise UserError(ErrorCode.GITHUB_UNAVAILABLE, f"{exc}; try again.") from None
        except CloneTokenUnavailable as exc:
            raise UserError(ErrorCode.SPEC_UNAVAILABLE, str(exc)) from None
        try:
            credentials = await self.grants.grant(
                spec.project_id,
                deployment_id,
                int(self.grant_lifetime.total_seconds()),
                # A fork's build (or a tag's) reads the project's caches, never writes one.
                None if spec.from_fork or not spec.branch else spec.branch,
                spec.cache_generation,
            )
        except UploadGrantError as exc:
            log.warning(
                "no upload grant", extra={"deployment_id": deployment_id, "error": str(exc)}
            )
            raise UserError(
                ErrorCode.UPLOAD_GRANT_UNAVAILABLE,
                "Upload credentials for this build are not available right now; try again.",
            ) from None
        await self.tokens.claim_spec(deployment_id, token)
        log.info("build spec fetched", extra={"deployment_id": deployment_id})
        return dataclasses.replace(spec, storage_credentials=credentials)

    async def append(self, deployment_id: str, token: str, body: bytes) -> int:
        """Append a batch of the build's log events; return how many were taken.

        Every byte counts against the build's log limit. The batch that passes it is refused,
        and the log says why, once, where the reconcile loop looks for a failed build's reason.
        """
        await self.tokens.check(deployment_id, token)
        events = parse_batch(body)
        limit_mb = self.limits.max_log_mb
        quota = await self.tokens.take_log(deployment_id, len(body), limit_mb * MB)
        if quota is not LogQuota.TAKEN:
            reason = f"the build log passed {limit_mb} MB"
            if quota is LogQuota.PASSED_NOW:
                await self.bus.append(
                    deployment_id,
                    {"type": "line", "ts": time.time(), "stream": "stderr", "text": reason},
                )
            raise UserError(ErrorCode.BUILD_LOG_TOO_LARGE, reason)
        await self.bus.extend(deployment_id, events)
        return len(events)
