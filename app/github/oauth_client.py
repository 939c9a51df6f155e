"""`GitHubUsersApi` over githubkit: the App's user authorization and calls made as a user.

The OAuth steps (web flow code exchange, device flow, refresh) are githubkit's own request flows
(`githubkit.auth.oauth`), sent to `SCALEMESH_GITHUB_WEB_URL`; calls made as the user go to
`SCALEMESH_GITHUB_API_URL`. githubkit, httpx and pydantic errors stop here as `GitHubError`.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from githubkit import GitHub, TokenAuthStrategy, UnauthAuthStrategy
from githubkit.auth import oauth
from githubkit.cache import MemCacheStrategy

from app.github.answers import TIMEOUT, parse_object, translated
from app.github.api import GitHubError
from app.github.inputs import split_repository
from app.github.oauth_api import (
    DeviceCode,
    DevicePending,
    GitHubUser,
    OAuthRefused,
    Permission,
    RepositoryAccess,
    TokenRejected,
    UserToken,
)
from app.github.transport import SharedTransport
from app.settings_parts import OAuthSettings

USER_AGENT = "ScaleMesh"
API_HEADERS = {"X-GitHub-Api-Version": "2022-11-28"}
PENDING = frozenset({"authorization_pending", "slow_down"})
"""Device flow answers that mean "not yet": keep polling."""
SLOW_DOWN_STEP = 5
"""Seconds GitHub adds to the interval with each `slow_down`."""


class GitHubUsersClient:
    """`GitHubUsersApi` for the App whose client credentials are `settings`.

    `web_url` is https://github.com or a GitHub Enterprise host; `api_url` its REST API.
    `transport` replaces the network, for tests.
    """

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        web_url: str,
        api_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._web_url = web_url.rstrip("/")
        self._api_url = api_url
        self._transport = SharedTransport(transport or httpx.AsyncHTTPTransport())
        # githubkit derives the OAuth host from its base URL: github.com for github.com, the
        # host's root otherwise; given the web URL, that is exactly `{web_url}/login/...`.
        self._web = self._github(UnauthAuthStrategy(), self._web_url)

    def __repr__(self) -> str:
        return f"GitHubUsersClient(web_url={self._web_url!r}, api_url={self._api_url!r})"

    def _github(self, auth: Any, base_url: str) -> GitHub[Any]:
        return GitHub(
            auth,
            base_url=base_url,
            user_agent=USER_AGENT,
            timeout=TIMEOUT,
            async_transport=self._transport,
            cache_strategy=MemCacheStrategy(),
            http_cache=False,
            auto_retry=False,
        )

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        query = urlencode(
            {"client_id": self._settings.client_id, "redirect_uri": redirect_uri, "state": state}
        )
        return f"{self._web_url}/login/oauth/authorize?{query}"

    async def exchange_code(self, code: str, redirect_uri: str) -> UserToken:
        secret = self._settings.client_secret.reveal()
        flow = oauth.exchange_web_flow_code(
            self._web, self._settings.client_id, secret, code, redirect_uri
        )
        return _user_token(await self._run(flow, "exchange the sign-in code"))

    async def refresh(self, refresh_token: str) -> UserToken:
        secret = self._settings.client_secret.reveal()
        flow = oauth.refresh_token(self._web, self._settings.client_id, secret, refresh_token)
        return _user_token(await self._run(flow, "refresh a user token"))

    async def start_device(self) -> DeviceCode:
        action = "start a device sign-in"
        flow = oauth.create_device_code(self._web, self._settings.client_id)
        data = await self._run(flow, action)
        _refused(data)
        try:
            return DeviceCode(
                device_code=str(data["device_code"]),
                user_code=str(data["user_code"]),
                verification_uri=str(data["verification_uri"]),
                expires_in=int(data["expires_in"]),
                interval=int(data["interval"]),
            )
        except (KeyError, TypeError, ValueError):
            raise GitHubError(f"{action}: GitHub's answer lacks the device code") from None

    async def poll_device(self, device_code: str) -> UserToken | DevicePending:
        flow = oauth.exchange_device_code(self._web, self._settings.client_id, device_code)
        data = await self._run(flow, "poll a device sign-in")
        if data.get("error") in PENDING:
            interval = data.get("interval")
            if isinstance(interval, int) and not isinstance(interval, bool):
                return DevicePending(interval=interval)
            return DevicePending(interval=SLOW_DOWN_STEP)
        return _user_token(data)

    async def user(self, token: str) -> GitHubUser:
        action = "read the signed-in GitHub user"
        data = await self._as_user(token, "/user", action)
        if data is None:
            raise GitHubError(f"{action}: GitHub answered 404")
        login, user_id = data.get("login"), data.get("id")
        if not isinstance(login, str) or not isinstance(user_id, int):
            raise GitHubError(f"{action}: GitHub's answer lacks the user's id or login")
        return GitHubUser(id=user_id, login=login)

    async def repository(self, token: str, repository: int | str) -> RepositoryAccess | None:
        if isinstance(repository, int):
            path = f"/repositories/{repository}"
        else:
            owner, name = split_repository(repository)
            path = f"/repos/{owner}/{name}"
        action = f"read repository {repository} as the user"
        data = await self._as_user(token, path, action)
        return None if data is None else _repository_access(data, action)

    async def aclose(self) -> None:
        await self._transport.close_pool()

    async def _as_user(self, token: str, path: str, action: str) -> dict[str, Any] | None:
        github = self._github(TokenAuthStrategy(token), self._api_url)
        try:
            with translated(action):
                response = await github.arequest("GET", path, headers=API_HEADERS)
        except GitHubError as exc:
            if exc.status == 404:
                return None
            if exc.status == 401:
                raise TokenRejected(str(exc), 401) from exc
            raise
        return parse_object(response, action)

    async def _run(
        self, flow: Generator[httpx.Request, httpx.Response, dict[str, Any]], action: str
    ) -> dict[str, Any]:
        """Send githubkit's request flow through our transport; return GitHub's JSON."""
        with translated(action):
            async with httpx.AsyncClient(transport=self._transport, timeout=TIMEOUT) as client:
                request = next(flow)
                while True:
                    response = await client.send(request)
                    await response.aread()
                    try:
                        request = flow.send(response)
                    except StopIteration as done:
                        data = done.value
                        break
        if not isinstance(data, dict):
            raise GitHubError(f"{action}: GitHub answered with something other than an object")
        return data


def _refused(data: dict[str, Any]) -> None:
    """GitHub answers OAuth refusals with 200 and an `error` field."""
    error = data.get("error")
    if isinstance(error, str) and error:
        description = data.get("error_description")
        text = description if isinstance(description, str) and description else error
        raise OAuthRefused(error, f"GitHub refused: {text}")


def _user_token(data: dict[str, Any]) -> UserToken:
    _refused(data)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise GitHubError("GitHub's token answer has no access_token")
    now = datetime.now(UTC)

    def expiry(field: str) -> datetime | None:
        seconds = data.get(field)
        return now + timedelta(seconds=int(seconds)) if isinstance(seconds, int) else None

    refresh = data.get("refresh_token")
    return UserToken(
        token=token,
        expires_at=expiry("expires_in"),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        refresh_expires_at=expiry("refresh_token_expires_in"),
    )


def _repository_access(data: dict[str, Any], action: str) -> RepositoryAccess:
    permissions = data.get("permissions")
    repo_id, full_name = data.get("id"), data.get("full_name")
    if not isinstance(repo_id, int) or not isinstance(full_name, str):
        raise GitHubError(f"{action}: GitHub's answer lacks the repository's id or name")
    granted = permissions if isinstance(permissions, dict) else {}
    # Highest first; a repository the user can see at all they may at least pull.
    permission = next((p for p in Permission if granted.get(p.value) is True), Permission.PULL)
    return RepositoryAccess(
        id=repo_id,
        full_name=full_name,
        private=bool(data.get("private")),
        permission=permission,
    )
