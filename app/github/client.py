"""Every call Scale Mesh makes to GitHub, as the App, behind one small interface.

`GitHubAppClient` signs App JWTs (githubkit's `AppAuthStrategy`), mints installation tokens and
keeps them until shortly before they expire, and mints a fresh read-only token scoped to one
repository for each build. githubkit, httpx and pydantic errors stop here: callers only ever see
`GitHubError` (or `CommentGone`). Nothing is retried here; the reconcile loop retries what failed.
When GitHub asks for a wait (a rate limit), the client refuses further calls of the same kind
(as that installation, or as the App itself) until the wait is over, without asking GitHub.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import anyio
import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.response import Response
from githubkit.utils import UNSET

from app.github.answers import (
    TIMEOUT,
    object_id,
    parse_id,
    parse_list,
    parse_object,
    translated,
)
from app.github.api import CommentGone, GitHubError
from app.github.inputs import SHA, one_of, ref_in_path, shorten, split_repository
from app.github.transport import SharedTransport
from app.github.waits import APP, Holds, utcnow
from app.settings_parts import GitHubSettings

log = logging.getLogger(__name__)

TOKEN_REFRESH_MARGIN = timedelta(minutes=5)
"""An installation token is replaced once it has less than this left (GitHub gives one hour)."""

COMMENTS_PER_PAGE = 100
"""GitHub's largest page of issue comments."""

MAX_COMMENT_PAGES = 100
"""Stop looking for our comment after this many pages, should a server keep saying "next"."""

USER_AGENT = "ScaleMesh"

API_HEADERS = {"X-GitHub-Api-Version": "2022-11-28"}
"""The REST API version we ask for, instead of githubkit's newest (2026-03-10): GitHub
Enterprise Server answers 400 to versions it does not know, and the endpoints used here are
the same in both versions (github.com supports 2022-11-28 until at least 2028)."""

CommitState = Literal["error", "failure", "pending", "success"]
DeploymentState = Literal[
    "error", "failure", "inactive", "in_progress", "queued", "pending", "success"
]


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: datetime

    def fresh(self) -> bool:
        return datetime.now(UTC) < self.expires_at - TOKEN_REFRESH_MARGIN

    def __repr__(self) -> str:
        return f"_Token('***', expires_at={self.expires_at.isoformat()})"


class GitHubAppClient:
    """`GitHubApi` over githubkit, authenticated as the GitHub App of `settings`.

    `api_url` is https://api.github.com or a GitHub Enterprise Server URL ending in /api/v3.
    `transport` replaces the network, for tests; `clock` tells the time waits end by.
    """

    def __init__(
        self,
        settings: GitHubSettings,
        api_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._transport = SharedTransport(transport or httpx.AsyncHTTPTransport())
        # Our own cache strategy: githubkit's default is one process-wide cache, which would
        # share JWTs between clients (and between tests).
        self._app = GitHub(
            AppAuthStrategy(app_id=settings.app_id, private_key=settings.private_key.reveal()),
            base_url=api_url,
            user_agent=USER_AGENT,
            timeout=TIMEOUT,
            async_transport=self._transport,
            cache_strategy=MemCacheStrategy(),
            http_cache=False,
            auto_retry=False,
        )
        self._tokens: dict[int, _Token] = {}
        self._minting: dict[int, anyio.Lock] = {}
        self._holds = Holds(clock)
        self._closed = False

    def __repr__(self) -> str:
        return f"GitHubAppClient(base_url={str(self._app.config.base_url)!r})"

    async def repo_token(self, installation_id: int, repository: str) -> str:
        _owner, name = split_repository(repository)
        action = f"mint a build token for {repository}"
        self._check_open(action)
        with self._translated(action, APP):
            response = await self._app.rest.apps.async_create_installation_access_token(
                installation_id,
                headers=API_HEADERS,
                # All a build may do with it: clone this one repository.
                repositories=[name],
                permissions={"contents": "read"},
            )
            token = _parse_token(response, action)
        log.debug(
            "build token minted",
            extra={"installation_id": installation_id, "expires_at": token.expires_at},
        )
        return token.value

    async def set_commit_status(
        self,
        installation_id: int,
        repository: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str,
    ) -> None:
        owner, name = split_repository(repository)
        if not SHA.fullmatch(sha):
            raise GitHubError(f"{sha!r} is not a commit sha")
        checked = one_of(state, get_args(CommitState), "commit status state")
        action = f"set commit status {context} on {repository}@{sha[:12]}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            await gh.rest.repos.async_create_commit_status(
                owner,
                name,
                sha,
                headers=API_HEADERS,
                state=checked,
                context=context,
                description=shorten(description),
                target_url=target_url,
            )

    async def create_deployment(
        self,
        installation_id: int,
        repository: str,
        *,
        sha: str,
        environment: str,
        description: str,
        transient: bool,
        production: bool,
    ) -> int:
        owner, name = split_repository(repository)
        action = f"create a deployment of {repository}@{sha[:12]} to {environment}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            response = await gh.rest.repos.async_create_deployment(
                owner,
                name,
                headers=API_HEADERS,
                ref=sha,
                environment=environment,
                description=description,
                # Otherwise GitHub refuses while our own commit status is still pending.
                required_contexts=[],
                # Never let GitHub merge the default branch into the ref it was given.
                auto_merge=False,
                transient_environment=transient,
                production_environment=production,
            )
            return parse_id(response, action)

    async def set_deployment_status(
        self,
        installation_id: int,
        repository: str,
        deployment_id: int,
        *,
        state: str,
        environment_url: str | None,
        log_url: str,
        description: str,
    ) -> None:
        owner, name = split_repository(repository)
        action = f"set status {state} on deployment {deployment_id} of {repository}"
        checked = one_of(state, get_args(DeploymentState), "deployment status state")
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            await gh.rest.repos.async_create_deployment_status(
                owner,
                name,
                deployment_id,
                headers=API_HEADERS,
                state=checked,
                log_url=log_url,
                description=shorten(description),
                environment_url=UNSET if environment_url is None else environment_url,
            )

    async def create_comment(
        self, installation_id: int, repository: str, number: int, body: str
    ) -> int:
        owner, name = split_repository(repository)
        action = f"comment on {repository}#{number}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            response = await gh.rest.issues.async_create_comment(
                owner, name, number, headers=API_HEADERS, body=body
            )
            return parse_id(response, action)

    async def update_comment(
        self, installation_id: int, repository: str, comment_id: int, body: str
    ) -> None:
        owner, name = split_repository(repository)
        action = f"edit comment {comment_id} on {repository}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id, gone=True):
            await gh.rest.issues.async_update_comment(
                owner, name, comment_id, headers=API_HEADERS, body=body
            )

    async def find_comment(
        self, installation_id: int, repository: str, number: int, marker: str
    ) -> int | None:
        owner, name = split_repository(repository)
        action = f"look for our comment on {repository}#{number}"
        gh = await self._as_installation(installation_id, action)
        # Page numbers, not the Link URL: the token goes only to the configured API host.
        for page in range(1, MAX_COMMENT_PAGES + 1):
            with self._translated(action, installation_id):
                response = await gh.rest.issues.async_list_comments(
                    owner, name, number, per_page=COMMENTS_PER_PAGE, page=page, headers=API_HEADERS
                )
            for comment in parse_list(response, action):
                body = comment.get("body")
                if isinstance(body, str) and marker in body:
                    return object_id(comment, action)
            if "next" not in response.raw_response.links:
                return None
        log.warning(
            "comment search gave up",
            extra={"repository": repository, "number": number, "pages": MAX_COMMENT_PAGES},
        )
        return None

    async def branch_head(self, installation_id: int, repository: str, branch: str) -> str | None:
        owner, name = split_repository(repository)
        action = f"read branch {branch!r} of {repository}"
        gh = await self._as_installation(installation_id, action)
        try:
            with self._translated(action, installation_id):
                response = await gh.rest.repos.async_get_branch(
                    owner, name, ref_in_path(branch), headers=API_HEADERS
                )
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        commit = parse_object(response, action).get("commit")
        return _sha_of(commit.get("sha") if isinstance(commit, dict) else None, action)

    async def commit_of(self, installation_id: int, repository: str, ref: str) -> str | None:
        owner, name = split_repository(repository)
        action = f"resolve {ref!r} in {repository}"
        gh = await self._as_installation(installation_id, action)
        try:
            with self._translated(action, installation_id):
                response = await gh.rest.repos.async_get_commit(
                    owner, name, ref_in_path(ref), per_page=1, headers=API_HEADERS
                )
        except GitHubError as exc:
            # 422: "No commit found for SHA"; 404: no such ref (or repository).
            if exc.status in (404, 422):
                return None
            raise
        return _sha_of(parse_object(response, action).get("sha"), action)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._tokens.clear()
            await self._transport.close_pool()

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise GitHubError(f"{action}: the GitHub client is closed")

    async def _as_installation(self, installation_id: int, action: str) -> GitHub[Any]:
        """A githubkit client carrying the installation's token, minting one when needed."""
        self._check_open(action)
        self._holds.check(installation_id, action)
        token = self._fresh_token(installation_id)
        if token is None:
            async with self._minting.setdefault(installation_id, anyio.Lock()):
                # Another call may have minted one while this one waited for the lock.
                token = self._fresh_token(installation_id) or await self._mint(
                    installation_id, action
                )
        return GitHub(TokenAuthStrategy(token.value), config=self._app.config)

    def _fresh_token(self, installation_id: int) -> _Token | None:
        token = self._tokens.get(installation_id)
        return token if token is not None and token.fresh() else None

    async def _mint(self, installation_id: int, action: str) -> _Token:
        """A new installation token, kept for the next calls."""
        with self._translated(action, APP):
            response = await self._app.rest.apps.async_create_installation_access_token(
                installation_id, headers=API_HEADERS
            )
            token = _parse_token(response, action)
        log.debug(
            "installation token minted",
            extra={"installation_id": installation_id, "expires_at": token.expires_at},
        )
        self._tokens[installation_id] = token
        return token

    @contextlib.contextmanager
    def _translated(self, action: str, caller: int | None, *, gone: bool = False) -> Iterator[None]:
        """`translated` for a call as installation `caller` (or as the App): a wait GitHub asks
        for holds back that caller's calls, a 401 drops its cached token (revoked early), and
        `gone` maps 404/410 to `CommentGone`."""
        if caller is APP:
            self._holds.check(APP, action)
        try:
            with translated(action):
                yield
        except GitHubError as exc:
            self._holds.note(caller, exc, action)
            if exc.status == 401 and caller is not APP:
                self._tokens.pop(caller, None)
            if gone and exc.status in (404, 410):
                raise CommentGone(str(exc), exc.status) from exc
            raise


def _sha_of(value: object, action: str) -> str:
    if not isinstance(value, str) or not SHA.fullmatch(value):
        raise GitHubError(f"{action}: GitHub's answer has no commit sha")
    return value


def _parse_token(response: Response[Any], action: str) -> _Token:
    data = parse_object(response, action)
    value, expires_at = data.get("token"), data.get("expires_at")
    if not isinstance(value, str) or not value or not isinstance(expires_at, str):
        raise GitHubError(f"{action}: GitHub's answer has no token and expiry")
    try:
        expiry = datetime.fromisoformat(expires_at)
    except ValueError:
        raise GitHubError(f"{action}: GitHub's token expiry {expires_at!r} is not a time") from None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return _Token(value, expiry)
