"""A recording fake of GitHub's side of "Sign in with GitHub", and of calls made as a user.

`FakeGitHubUsers` keeps GitHub's users, repositories and per-user permissions, and serves:
- the OAuth web flow: `GET /login/oauth/authorize` (approves at once for `browser_user`) and
  `POST /login/oauth/access_token` (code, refresh token and device code grants);
- the device flow: `POST /login/device/code` (`authorize_device()` plays the user typing the
  code on github.com);
- `GET /user`, `GET /repos/{owner}/{repo}` and `GET /repositories/{id}`, answering as the user a
  bearer token belongs to, with `permissions` as GitHub reports them.

Requests are matched by path alone, so one fake serves both the web host and the API host. Use
`transport` for in-process clients (`GitHubUsersClient(..., transport=fake.transport)`), or
`tests.support.servers` to serve `asgi` over real HTTP for a browser.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from app.github.oauth_api import Permission

CLIENT_ID = "Iv1.testclient"
CLIENT_SECRET = "test-client-secret"
WEB_URL = "https://github.com"
API_URL = "https://api.github.com"


@dataclass
class FakeUser:
    id: int
    login: str


@dataclass
class FakeRepo:
    id: int
    full_name: str
    private: bool = True


@dataclass
class IssuedToken:
    user_id: int
    expires_at: datetime | None
    revoked: bool = False


@dataclass
class DeviceGrant:
    user_code: str
    expires_at: datetime
    user_id: int | None = None
    denied: bool = False
    used: bool = False


@dataclass
class UsersCall:
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any] = field(default_factory=dict)


class FakeGitHubUsers:
    """See the module docstring. `token_ttl=None` issues tokens that never expire (and no
    refresh tokens); otherwise tokens expire after it and come with a refresh token."""

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        web_url: str = WEB_URL,
        token_ttl: timedelta | None = timedelta(hours=8),
        device_interval: int = 1,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.web_url = web_url.rstrip("/")
        self.token_ttl = token_ttl
        self.device_interval = device_interval
        self.users: dict[int, FakeUser] = {}
        self.repos: dict[int, FakeRepo] = {}
        self.permissions: dict[tuple[int, int], Permission] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.refresh_tokens: dict[str, int] = {}
        self.codes: dict[str, tuple[int, str]] = {}
        self.devices: dict[str, DeviceGrant] = {}
        self.browser_user: str | None = None
        """The login of whoever is signed in to github.com in "the browser": authorize approves
        for them at once. None: authorize answers 403 (nobody to approve)."""
        self.calls: list[UsersCall] = []
        self.canned: dict[tuple[str, str], tuple[int, Any]] = {}
        """Answers given as they are instead of the fake's own (`answer_with`)."""
        self._lock = threading.RLock()
        self._next_id = 5000

    # --- GitHub-side state ------------------------------------------------------------------

    def add_user(self, login: str) -> FakeUser:
        with self._lock:
            user = FakeUser(self._new_id(), login)
            self.users[user.id] = user
            return user

    def add_repo(
        self, full_name: str, *, private: bool = True, repo_id: int | None = None
    ) -> FakeRepo:
        with self._lock:
            repo = FakeRepo(repo_id or self._new_id(), full_name, private)
            self.repos[repo.id] = repo
            return repo

    def grant(self, login: str, full_name: str, permission: Permission | None) -> None:
        """Give `login` this permission on the repository (None takes it away)."""
        with self._lock:
            key = (self.user(login).id, self.repo(full_name).id)
            if permission is None:
                self.permissions.pop(key, None)
            else:
                self.permissions[key] = permission

    def rename(self, full_name: str, new_full_name: str) -> None:
        with self._lock:
            self.repo(full_name).full_name = new_full_name

    def user(self, login: str) -> FakeUser:
        return next(user for user in self.users.values() if user.login == login)

    def repo(self, full_name: str) -> FakeRepo:
        return next(
            repo for repo in self.repos.values() if repo.full_name.lower() == full_name.lower()
        )

    def token_for(self, login: str) -> str:
        """Issue a token for `login` directly (as if they had signed in)."""
        with self._lock:
            return self._issue(self.user(login).id)["access_token"]

    def revoke(self, login: str) -> None:
        """The user revoked the App: every token of theirs answers 401 from now on."""
        with self._lock:
            user_id = self.user(login).id
            for issued in self.tokens.values():
                if issued.user_id == user_id:
                    issued.revoked = True
            for refresh, owner in list(self.refresh_tokens.items()):
                if owner == user_id:
                    del self.refresh_tokens[refresh]

    def expire_tokens(self) -> None:
        """Every token issued so far has expired (its refresh token still works)."""
        with self._lock:
            past = datetime.now(UTC) - timedelta(seconds=1)
            for issued in self.tokens.values():
                issued.expires_at = past

    def authorize_device(self, user_code: str, login: str, *, deny: bool = False) -> None:
        """`login` typed `user_code` on github.com/login/device and approved (or denied)."""
        with self._lock:
            grant = next(g for g in self.devices.values() if g.user_code == user_code)
            grant.user_id, grant.denied = self.user(login).id, deny

    def answer_with(self, method: str, path: str, body: Any, status: int = 200) -> None:
        """From now on, answer `method path` with this JSON body and status (a GitHub gone odd)."""
        with self._lock:
            self.canned[(method, path)] = (status, body)

    def calls_to(self, method: str, path: str) -> list[UsersCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path == path]

    # --- serving ----------------------------------------------------------------------------

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = _body(request)
        path = request.url.path
        with self._lock:
            self.calls.append(
                UsersCall(request.method, path, request.headers.get("authorization"), body)
            )
            if (canned := self.canned.get((request.method, path))) is not None:
                return httpx.Response(canned[0], json=canned[1])
            if request.method == "GET" and path == "/login/oauth/authorize":
                return self._authorize(dict(request.url.params))
            if request.method == "POST" and path == "/login/oauth/access_token":
                return self._access_token(body)
            if request.method == "POST" and path == "/login/device/code":
                return self._device_code(body)
            if request.method == "GET":
                return self._api(request, path)
        return _json({"message": "Not Found"}, 404)

    def _authorize(self, params: dict[str, str]) -> httpx.Response:
        if params.get("client_id") != self.client_id:
            return _json({"message": "unknown client_id"}, 404)
        if self.browser_user is None:
            return _json({"message": "nobody is signed in to the fake GitHub"}, 403)
        code = secrets.token_hex(10)
        redirect_uri = params.get("redirect_uri", "")
        self.codes[code] = (self.user(self.browser_user).id, redirect_uri)
        query = urlencode({"code": code, "state": params.get("state", "")})
        return httpx.Response(302, headers={"location": f"{redirect_uri}?{query}"})

    def _access_token(self, body: dict[str, Any]) -> httpx.Response:
        if body.get("client_id") != self.client_id:
            return _json({"error": "incorrect_client_credentials"})
        grant = body.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_token(str(body.get("device_code")))
        if body.get("client_secret") != self.client_secret:
            return _json({"error": "incorrect_client_credentials"})
        if grant == "refresh_token":
            user_id = self.refresh_tokens.pop(str(body.get("refresh_token")), None)
            if user_id is None:
                return _json({"error": "bad_refresh_token"})
            return _json(self._issue(user_id))
        found = self.codes.pop(str(body.get("code")), None)
        if found is None:
            return _json({"error": "bad_verification_code"})
        user_id, redirect_uri = found
        if body.get("redirect_uri") not in (None, redirect_uri):
            return _json({"error": "redirect_uri_mismatch"})
        return _json(self._issue(user_id))

    def _device_code(self, body: dict[str, Any]) -> httpx.Response:
        if body.get("client_id") != self.client_id:
            return _json({"error": "incorrect_client_credentials"})
        device_code = secrets.token_hex(20)
        user_code = f"{secrets.randbelow(10_000):04d}-{secrets.randbelow(10_000):04d}"
        expires = datetime.now(UTC) + timedelta(minutes=15)
        self.devices[device_code] = DeviceGrant(user_code, expires)
        return _json(
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": f"{self.web_url}/login/device",
                "expires_in": 900,
                "interval": self.device_interval,
            }
        )

    def _device_token(self, device_code: str) -> httpx.Response:
        grant = self.devices.get(device_code)
        if grant is None or grant.used or grant.expires_at < datetime.now(UTC):
            return _json({"error": "expired_token"})
        if grant.denied:
            return _json({"error": "access_denied"})
        if grant.user_id is None:
            return _json({"error": "authorization_pending", "interval": self.device_interval})
        grant.used = True
        return _json(self._issue(grant.user_id))

    def _api(self, request: httpx.Request, path: str) -> httpx.Response:
        user = self._bearer_user(request)
        if user is None:
            return _json({"message": "Bad credentials"}, 401)
        if path == "/user":
            return _json({"id": user.id, "login": user.login, "type": "User"})
        repo = self._repo_at(path)
        if repo is None:
            return _json({"message": "Not Found"}, 404)
        permission = self.permissions.get((user.id, repo.id))
        if permission is None and repo.private:
            return _json({"message": "Not Found"}, 404)
        return _json(_repo_json(repo, permission or Permission.PULL))

    def _bearer_user(self, request: httpx.Request) -> FakeUser | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        issued = self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if issued is None or issued.revoked:
            return None
        if issued.expires_at is not None and issued.expires_at <= datetime.now(UTC):
            return None
        return self.users.get(issued.user_id)

    def _repo_at(self, path: str) -> FakeRepo | None:
        if match := re.fullmatch(r"/repositories/(\d+)", path):
            return self.repos.get(int(match[1]))
        if match := re.fullmatch(r"/repos/([^/]+)/([^/]+)", path):
            full_name = f"{match[1]}/{match[2]}".lower()
            return next((r for r in self.repos.values() if r.full_name.lower() == full_name), None)
        return None

    def _issue(self, user_id: int) -> dict[str, Any]:
        token = "ghu_" + secrets.token_hex(18)
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer", "scope": ""}
        expires_at = None
        if self.token_ttl is not None:
            expires_at = datetime.now(UTC) + self.token_ttl
            refresh = "ghr_" + secrets.token_hex(30)
            self.refresh_tokens[refresh] = user_id
            answer |= {
                "expires_in": int(self.token_ttl.total_seconds()),
                "refresh_token": refresh,
                "refresh_token_expires_in": 15_897_600,
            }
        self.tokens[token] = IssuedToken(user_id, expires_at)
        return answer

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _repo_json(repo: FakeRepo, permission: Permission) -> dict[str, Any]:
    order = list(Permission)  # highest first
    rank = order.index(permission)
    owner, name = repo.full_name.split("/", 1)
    return {
        "id": repo.id,
        "name": name,
        "full_name": repo.full_name,
        "owner": {"login": owner},
        "private": repo.private,
        "clone_url": f"{WEB_URL}/{repo.full_name}.git",
        "permissions": {p.value: order.index(p) >= rank for p in order},
    }


def _body(request: httpx.Request) -> dict[str, Any]:
    content = request.content
    if not content:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(content)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {key: values[0] for key, values in parse_qs(content.decode()).items()}


def _json(data: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data)


def split_location(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """A redirect's target without its query, and the query's values."""
    parts = urlsplit(response.headers["location"])
    target = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
    return target, {key: values[0] for key, values in parse_qs(parts.query).items()}
