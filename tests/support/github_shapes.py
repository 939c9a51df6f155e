"""GitHub's side of the fake: what it keeps (tokens, deployments, comments) and the JSON it answers.

Answers are real GitHub response shapes, trimmed to what githubkit's response models require;
`tests/test_github_client.py` validates each one against those models.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""GitHub's timestamps; githubkit parses `expires_at` with exactly this format."""

BOT_LOGIN = "scalemesh[bot]"


ROUTES = (
    "access_tokens",
    "commit_status",
    "create_deployment",
    "deployment_status",
    "list_comments",
    "create_comment",
    "update_comment",
    "get_branch",
    "get_commit",
)
"""Route names for `FakeGitHubApi.fail()`; anything else under the API URL answers 404."""

ROUTE_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (name, method, re.compile(pattern))
    for name, method, pattern in (
        ("access_tokens", "POST", r"/app/installations/(?P<installation_id>\d+)/access_tokens"),
        ("commit_status", "POST", r"/repos/(?P<repo>[^/]+/[^/]+)/statuses/(?P<sha>[^/]+)"),
        ("create_deployment", "POST", r"/repos/(?P<repo>[^/]+/[^/]+)/deployments"),
        (
            "deployment_status",
            "POST",
            r"/repos/(?P<repo>[^/]+/[^/]+)/deployments/(?P<deployment_id>\d+)/statuses",
        ),
        ("list_comments", "GET", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments"),
        (
            "create_comment",
            "POST",
            r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments",
        ),
        (
            "update_comment",
            "PATCH",
            r"/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<comment_id>\d+)",
        ),
        ("get_branch", "GET", r"/repos/(?P<repo>[^/]+/[^/]+)/branches/(?P<branch>.+)"),
        ("get_commit", "GET", r"/repos/(?P<repo>[^/]+/[^/]+)/commits/(?P<ref>.+)"),
    )
)

# The permission each route needs, for tokens minted with a `permissions` restriction.
NEEDS: Mapping[str, tuple[str, str]] = {
    "commit_status": ("statuses", "write"),
    "create_deployment": ("deployments", "write"),
    "deployment_status": ("deployments", "write"),
    "list_comments": ("issues", "read"),
    "create_comment": ("issues", "write"),
    "update_comment": ("issues", "write"),
    "get_branch": ("contents", "read"),
    "get_commit": ("contents", "read"),
}


@functools.cache
def app_private_key() -> str:
    """A throw-away RSA key for the test App, PEM (PKCS#1, as GitHub hands them out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


class Call(NamedTuple):
    """One request GitHub received. `path` is relative to the API URL and keeps its query."""

    method: str
    path: str
    json: Any
    authorization: str | None


@dataclass
class MintedToken:
    token: str
    installation_id: int
    repositories: list[str] | None
    permissions: dict[str, str] | None
    expires_at: datetime
    revoked: bool = False


@dataclass
class FakeDeployment:
    id: int
    repository: str
    request: dict[str, Any]
    """The body of the POST that created it."""
    statuses: list[dict[str, Any]] = field(default_factory=list)
    """The body of each status POSTed to it, in order."""


@dataclass
class FakeComment:
    id: int
    repository: str
    number: int
    body: str
    login: str = BOT_LOGIN


def user_json(base_url: str, login: str) -> dict[str, Any]:
    url = f"{base_url}/users/{login}"
    return {
        "login": login,
        "id": 1,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }


def repository_json(full_name: str) -> dict[str, Any]:
    return {"id": 1, "name": full_name.split("/")[1], "full_name": full_name}


def deployment_json(base_url: str, deployment: FakeDeployment) -> dict[str, Any]:
    repo_url = f"{base_url}/repos/{deployment.repository}"
    request = deployment.request
    now = timestamp()
    return {
        "url": f"{repo_url}/deployments/{deployment.id}",
        "id": deployment.id,
        "node_id": "DE_kwDOAAAB",
        "sha": request["ref"],
        "ref": request["ref"],
        "task": request.get("task", "deploy"),
        "payload": request.get("payload", {}),
        "original_environment": request.get("environment", "production"),
        "environment": request.get("environment", "production"),
        "description": request.get("description"),
        "creator": user_json(base_url, BOT_LOGIN),
        "created_at": now,
        "updated_at": now,
        "statuses_url": f"{repo_url}/deployments/{deployment.id}/statuses",
        "repository_url": repo_url,
        "transient_environment": request.get("transient_environment", False),
        "production_environment": request.get("production_environment", False),
    }


def comment_json(base_url: str, comment: FakeComment) -> dict[str, Any]:
    repo_url = f"{base_url}/repos/{comment.repository}"
    now = timestamp()
    return {
        "id": comment.id,
        "node_id": "IC_kwDOAAAB",
        "url": f"{repo_url}/issues/comments/{comment.id}",
        "html_url": f"https://github.com/{comment.repository}/pull/{comment.number}"
        f"#issuecomment-{comment.id}",
        "body": comment.body,
        "user": user_json(base_url, comment.login),
        "created_at": now,
        "updated_at": now,
        "issue_url": f"{repo_url}/issues/{comment.number}",
        "author_association": "NONE",
    }


def timestamp() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        },
    )


def raw(status: int, body: Any, headers: dict[str, str]) -> httpx.Response:
    if body is None:
        body = error(status, "Server Error" if status >= 500 else "Failed").json()
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def commit_status_json(
    base_url: str, repository: str, sha: str, status_id: int, body: Any
) -> dict[str, Any]:
    now = timestamp()
    return {
        "url": f"{base_url}/repos/{repository}/statuses/{sha}",
        "avatar_url": "https://avatars.githubusercontent.com/in/4242?v=4",
        "id": status_id,
        "node_id": "SC_kwDOAAAB",
        "state": body["state"],
        "description": body.get("description"),
        "target_url": body.get("target_url"),
        "context": body.get("context", "default"),
        "created_at": now,
        "updated_at": now,
        "creator": user_json(base_url, BOT_LOGIN),
    }


def deployment_status_json(
    base_url: str, deployment: FakeDeployment, status_id: int, body: Any
) -> dict[str, Any]:
    now = timestamp()
    repo_url = f"{base_url}/repos/{deployment.repository}"
    return {
        "url": f"{repo_url}/deployments/{deployment.id}/statuses/{status_id}",
        "id": status_id,
        "node_id": "DES_kwDOAAAB",
        "state": body["state"],
        "creator": user_json(base_url, BOT_LOGIN),
        "description": body.get("description", ""),
        "environment": deployment.request.get("environment", "production"),
        "target_url": body.get("log_url", ""),
        "log_url": body.get("log_url", ""),
        "environment_url": body.get("environment_url", ""),
        "created_at": now,
        "updated_at": now,
        "deployment_url": f"{repo_url}/deployments/{deployment.id}",
        "repository_url": repo_url,
    }


def page_links(url: str, page: int, last: int, per_page: int) -> list[str]:
    """The parts of a `Link` header for page `page` of `last` (GitHub's pagination)."""

    def link(to: int, rel: str) -> str:
        return f'<{url}?{urlencode({"per_page": per_page, "page": to})}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return links
