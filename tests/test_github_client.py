"""The GitHub App client: the exact requests GitHub receives, token handling, error translation."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from githubkit_schemas.latest.models import (
    Deployment,
    DeploymentStatus,
    InstallationToken,
    IssueComment,
    Status,
)

from app.github import client as client_module
from app.github.api import CommentGone, GitHubApi, GitHubError, github_from_settings
from app.github.client import GitHubAppClient
from app.settings import Secret, Settings
from app.settings_parts import GitHubSettings
from tests.github_fake import APP_ID, WEBHOOK_SECRET, Call, FakeGitHubApi, app_private_key

pytestmark = pytest.mark.anyio

REPO = "octo-org/web"
SHA = "a" * 40
INSTALLATION = 42
MARKER = "<!-- scalemesh:preview -->"
PREVIEW = "Preview \N{EN DASH} web"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def app_settings() -> GitHubSettings:
    return GitHubSettings(
        app_id=APP_ID, private_key=Secret(app_private_key()), webhook_secret=Secret(WEBHOOK_SECRET)
    )


@pytest.fixture
def github() -> Iterator[FakeGitHubApi]:
    with FakeGitHubApi() as fake:
        yield fake


@pytest.fixture
async def client(github: FakeGitHubApi) -> AsyncIterator[GitHubAppClient]:
    client = GitHubAppClient(app_settings(), github.base_url)
    yield client
    await client.aclose()


async def status(client: GitHubApi, state: str = "pending", **overrides: Any) -> None:
    repository = overrides.pop("repository", REPO)
    fields: dict[str, Any] = {
        "state": state,
        "context": "scalemesh/web",
        "description": "Building…",
        "target_url": "https://scalemesh.example/deployments/7",
    }
    fields.update(overrides)
    await client.set_commit_status(INSTALLATION, repository, SHA, **fields)


def mint_path(installation_id: int = INSTALLATION) -> str:
    return f"/app/installations/{installation_id}/access_tokens"


# --- authentication ---------------------------------------------------------------------------


async def test_repo_token_is_minted_fresh_for_one_repository_read_only(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    first = await client.repo_token(INSTALLATION, REPO)
    second = await client.repo_token(INSTALLATION, REPO)

    assert [t.token for t in github.tokens] == [first, second]
    assert first != second
    calls = github.calls_to("POST", mint_path())
    assert [c.json for c in calls] == [
        {"repositories": ["web"], "permissions": {"contents": "read"}}
    ] * 2
    # The token can clone, and nothing more: GitHub refuses it a commit status.
    refused = github.handle(
        httpx.Request(
            "POST",
            f"{github.base_url}/repos/{REPO}/statuses/{SHA}",
            json={"state": "pending"},
            headers={"Authorization": f"token {first}"},
        )
    )
    assert refused.status_code == 403


async def test_the_app_jwt_is_sent_only_to_mint_tokens(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    await client.repo_token(INSTALLATION, REPO)

    mint, post, build = github.calls
    assert (mint.method, mint.path, build.path) == ("POST", mint_path(), mint_path())
    public_key = serialization.load_pem_private_key(
        app_private_key().encode(), password=None
    ).public_key()
    for call in (mint, build):
        assert call.authorization is not None
        scheme, _, credential = call.authorization.partition(" ")
        assert scheme == "Bearer"
        claims = jwt.decode(credential, public_key, algorithms=["RS256"])  # type: ignore[arg-type]
        assert claims["iss"] == str(APP_ID)
        assert claims["exp"] - claims["iat"] <= 600
    assert post.authorization == f"token {github.tokens[0].token}"


async def test_an_installation_token_serves_many_calls(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client, "pending")
    await status(client, "success")
    await client.create_comment(INSTALLATION, REPO, 5, "hello")

    assert len(github.calls_to("POST", mint_path())) == 1
    token = github.tokens[0].token
    assert [c.authorization for c in github.calls[1:]] == [f"token {token}"] * 3


async def test_each_installation_has_its_own_token(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    await client.set_commit_status(
        7, REPO, SHA, state="pending", context="c", description="d", target_url="https://x.test"
    )

    assert [t.installation_id for t in github.tokens] == [INSTALLATION, 7]
    assert github.calls[-1].authorization == f"token {github.tokens[1].token}"


@pytest.mark.parametrize(("ttl_minutes", "mints"), [(6, 1), (4, 2)])
async def test_a_token_close_to_expiry_is_replaced(ttl_minutes: int, mints: int) -> None:
    # Refreshed 5 minutes before expiry: a 6-minute token is reused, a 4-minute one is not.
    with FakeGitHubApi(token_ttl=timedelta(minutes=ttl_minutes)) as github:
        client = GitHubAppClient(app_settings(), github.base_url)
        await status(client)
        await status(client)
        await client.aclose()

    assert len(github.tokens) == mints
    assert github.calls[-1].authorization == f"token {github.tokens[-1].token}"


class SlowMint(httpx.AsyncBaseTransport):
    """Answers from the fake, taking a moment over each token so other calls queue behind it."""

    def __init__(self, github: FakeGitHubApi) -> None:
        self.inner = github.transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/access_tokens"):
            await anyio.sleep(0.05)
        return await self.inner.handle_async_request(request)


async def test_concurrent_calls_mint_one_token(github: FakeGitHubApi) -> None:
    client = GitHubAppClient(app_settings(), github.base_url, transport=SlowMint(github))
    async with anyio.create_task_group() as group:
        for state in ("pending", "pending", "success"):
            group.start_soon(status, client, state)
    await client.aclose()

    assert len(github.tokens) == 1
    assert len(github.commit_statuses[(REPO, SHA)]) == 3


async def test_a_revoked_token_fails_once_then_a_new_one_is_minted(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    github.revoke_tokens()

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status == 401
    assert "Bad credentials" in str(caught.value)

    await status(client)
    assert len(github.tokens) == 2
    assert github.calls[-1].authorization == f"token {github.tokens[1].token}"
    assert len(github.commit_statuses[(REPO, SHA)]) == 2


async def test_a_token_expiry_without_zone_is_read_as_utc(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail(
        "access_tokens",
        status=201,
        body={"token": "ghs_unknown", "expires_at": "2099-01-01T00:00:00"},
        times=1,
    )
    with pytest.raises(GitHubError):  # the fake never minted ghs_unknown
        await status(client)
    await status(client)  # the cached ghs_unknown was dropped on the 401

    assert github.calls[1].authorization == "token ghs_unknown"
    assert github.calls[-1].authorization == f"token {github.tokens[0].token}"


# --- what GitHub receives ---------------------------------------------------------------------


async def test_commit_status_body(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    await status(client, "failure", description="x" * 200)

    (call,) = github.calls_to("POST", f"/repos/{REPO}/statuses/{SHA}")
    assert call.json == {
        "state": "failure",
        "context": "scalemesh/web",
        "description": "x" * 139 + "…",
        "target_url": "https://scalemesh.example/deployments/7",
    }
    assert github.commit_statuses == {(REPO, SHA): [call.json]}


async def test_deployment_and_its_statuses(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    deployment_id = await client.create_deployment(
        INSTALLATION,
        REPO,
        sha=SHA,
        environment=PREVIEW,
        description="Preview of feature-x",
        transient=True,
        production=False,
    )
    await client.set_deployment_status(
        INSTALLATION,
        REPO,
        deployment_id,
        state="in_progress",
        environment_url=None,
        log_url="https://scalemesh.example/deployments/7",
        description="Building…",
    )
    await client.set_deployment_status(
        INSTALLATION,
        REPO,
        deployment_id,
        state="success",
        environment_url="https://feature-x--web.example.net",
        log_url="https://scalemesh.example/deployments/7",
        description="Deployed",
    )

    deployment = github.deployments[deployment_id]
    assert deployment.repository == REPO
    assert github.calls_to("POST", f"/repos/{REPO}/deployments")[0].json == {
        "ref": SHA,
        "environment": PREVIEW,
        "description": "Preview of feature-x",
        "required_contexts": [],
        "auto_merge": False,
        "transient_environment": True,
        "production_environment": False,
    }
    assert deployment.statuses == [
        {
            "state": "in_progress",
            "log_url": "https://scalemesh.example/deployments/7",
            "description": "Building…",
        },
        {
            "state": "success",
            "log_url": "https://scalemesh.example/deployments/7",
            "description": "Deployed",
            "environment_url": "https://feature-x--web.example.net",
        },
    ]
    assert [c.path for c in github.calls[-2:]] == [
        f"/repos/{REPO}/deployments/{deployment_id}/statuses"
    ] * 2


async def test_comment_created_then_edited_in_place(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, f"{MARKER}\nBuilding")
    await client.update_comment(INSTALLATION, REPO, comment_id, f"{MARKER}\nReady")

    (comment,) = github.comments_on(REPO, 5)
    assert (comment.id, comment.body) == (comment_id, f"{MARKER}\nReady")
    assert github.calls_to("POST", f"/repos/{REPO}/issues/5/comments")[0].json == {
        "body": f"{MARKER}\nBuilding"
    }
    assert github.calls[-1] == Call(
        "PATCH",
        f"/repos/{REPO}/issues/comments/{comment_id}",
        {"body": f"{MARKER}\nReady"},
        f"token {github.tokens[0].token}",
    )


async def test_editing_a_deleted_comment_raises_comment_gone(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, MARKER)
    github.delete_comment(comment_id)

    with pytest.raises(CommentGone) as caught:
        await client.update_comment(INSTALLATION, REPO, comment_id, MARKER)
    assert caught.value.status == 404


@pytest.mark.parametrize(("code", "error"), [(410, CommentGone), (500, GitHubError)])
async def test_edit_failures(
    github: FakeGitHubApi, client: GitHubAppClient, code: int, error: type[GitHubError]
) -> None:
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, MARKER)
    github.fail("update_comment", status=code)

    with pytest.raises(GitHubError) as caught:
        await client.update_comment(INSTALLATION, REPO, comment_id, MARKER)
    assert (type(caught.value), caught.value.status) == (error, code)


async def test_find_comment_reads_every_page() -> None:
    with FakeGitHubApi(max_per_page=2) as github:
        client = GitHubAppClient(app_settings(), github.base_url)
        for n in range(4):
            github.add_comment(REPO, 5, f"LGTM {n}")
        ours = github.add_comment(REPO, 5, f"{MARKER}\n| project |", login="scalemesh[bot]")
        github.add_comment(REPO, 5, f"{MARKER} quoted later")
        github.add_comment(REPO, 6, MARKER)

        assert await client.find_comment(INSTALLATION, REPO, 5, MARKER) == ours.id
        assert await client.find_comment(INSTALLATION, REPO, 5, "<!-- other -->") is None
        await client.aclose()

    pages = [c.path for c in github.calls if c.method == "GET"]
    listing = f"/repos/{REPO}/issues/5/comments?per_page=100"
    assert pages == [f"{listing}&page={n}" for n in (1, 2, 3, 1, 2, 3)]


async def test_find_comment_on_a_pr_without_comments(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    assert await client.find_comment(INSTALLATION, REPO, 9, MARKER) is None
    assert [c.path for c in github.calls[1:]] == [
        f"/repos/{REPO}/issues/9/comments?per_page=100&page=1"
    ]


async def test_find_comment_gives_up_after_max_pages(
    github: FakeGitHubApi,
    client: GitHubAppClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(client_module, "MAX_COMMENT_PAGES", 2)
    github.fail(
        "list_comments",
        status=200,
        body=[],
        headers={"Link": f'<{github.base_url}/x?page=99>; rel="next"'},
    )

    with caplog.at_level(logging.WARNING, logger="app.github.client"):
        assert await client.find_comment(INSTALLATION, REPO, 5, MARKER) is None

    assert len(github.calls_to("GET", f"/repos/{REPO}/issues/5/comments")) == 2
    assert [r.getMessage() for r in caplog.records] == ["comment search gave up"]


async def test_enterprise_server_url(make_settings: Callable[..., Settings]) -> None:
    with FakeGitHubApi("https://ghe.example.com/api/v3") as github:
        client = github_from_settings(make_settings(**github.environ()))
        assert isinstance(client, GitHubAppClient)
        comment_id = await client.create_comment(INSTALLATION, REPO, 5, "hi")
        await client.aclose()

    assert [c.path for c in github.calls] == [mint_path(), f"/repos/{REPO}/issues/5/comments"]
    assert github.comments[comment_id].body == "hi"


# --- refusing bad input before GitHub sees it -------------------------------------------------


@pytest.mark.parametrize("repository", ["web", "a/b/c", "octo/..", "../web", "/web", "o/", "o w/x"])
async def test_malformed_repository_names_are_refused(
    github: FakeGitHubApi, client: GitHubAppClient, repository: str
) -> None:
    with pytest.raises(GitHubError, match="not a repository name"):
        await status(client, repository=repository)
    with pytest.raises(GitHubError, match="not a repository name"):
        await client.repo_token(INSTALLATION, repository)
    assert github.calls == []


async def test_bad_sha_and_states_are_refused(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    with pytest.raises(GitHubError, match="not a commit sha"):
        await client.set_commit_status(
            INSTALLATION, REPO, "../main", state="pending", context="c", description="d",
            target_url="https://x.test",
        )  # fmt: skip
    with pytest.raises(GitHubError, match="not a commit status state"):
        await status(client, "queued")
    with pytest.raises(GitHubError, match="not a deployment status state"):
        await client.set_deployment_status(
            INSTALLATION, REPO, 1, state="done", environment_url=None, log_url="x", description=""
        )
    assert github.calls == []


# --- error translation ------------------------------------------------------------------------


async def test_server_error(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("commit_status", status=500, body={"message": "Something went wrong"})

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status == 500
    assert str(caught.value) == (
        f"set commit status scalemesh/web on {REPO}@{SHA[:12]}: "
        "GitHub answered 500: Something went wrong"
    )
    assert len(github.calls_to("POST", f"/repos/{REPO}/statuses/{SHA}")) == 1  # no retry


@pytest.mark.parametrize("body", ["<html>Bad gateway</html>", ["not", "an", "object"]])
async def test_error_bodies_without_a_message(
    github: FakeGitHubApi, client: GitHubAppClient, body: Any
) -> None:
    github.fail("create_comment", status=502, body=body)

    with pytest.raises(GitHubError) as caught:
        await client.create_comment(INSTALLATION, REPO, 5, "x")
    assert str(caught.value) == f"comment on {REPO}#5: GitHub answered 502"


async def test_rate_limit_says_when_to_retry(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail(
        "create_deployment",
        status=403,
        body={"message": "You have exceeded a secondary rate limit."},
        headers={"Retry-After": "30"},
    )

    with pytest.raises(GitHubError) as caught:
        await client.create_deployment(
            INSTALLATION,
            REPO,
            sha=SHA,
            environment="Production",
            description="",
            transient=False,
            production=True,
        )
    assert (caught.value.status, caught.value.retry_after) == (403, 30.0)


async def test_refused_token_mint(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("access_tokens", status=404, body={"message": "Not Found"})

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status == 404
    with pytest.raises(GitHubError, match="mint a build token for octo-org/web"):
        await client.repo_token(INSTALLATION, REPO)
    assert github.commit_statuses == {}


async def test_network_error(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("commit_status", error=httpx.ConnectError("Connection refused"))

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status is None
    assert str(caught.value).endswith("ConnectError: Connection refused")
    assert not isinstance(caught.value.__cause__, GitHubError)


async def test_network_error_without_message(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail("access_tokens", error=httpx.RemoteProtocolError(""))

    with pytest.raises(GitHubError, match=r"set commit status .*: RemoteProtocolError$"):
        await status(client)


async def test_timeout(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("list_comments", error=httpx.ReadTimeout("timed out"))

    with pytest.raises(GitHubError) as caught:
        await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    assert caught.value.status is None
    assert "did not answer within 10 s" in str(caught.value)


async def test_every_request_has_a_timeout_and_an_api_version(github: FakeGitHubApi) -> None:
    seen: list[tuple[str, str | None, str | None, Any]] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.url.path,
                request.headers.get("x-github-api-version"),
                request.headers.get("user-agent"),
                request.extensions["timeout"],
            )
        )
        return github.handle(request)

    client = GitHubAppClient(app_settings(), github.base_url, transport=httpx.MockTransport(spy))
    await status(client)
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, MARKER)
    await client.update_comment(INSTALLATION, REPO, comment_id, MARKER)
    await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    deployment_id = await client.create_deployment(
        INSTALLATION, REPO, sha=SHA, environment="Production", description="",
        transient=False, production=True,
    )  # fmt: skip
    await client.set_deployment_status(
        INSTALLATION, REPO, deployment_id, state="queued", environment_url=None, log_url="x",
        description="",
    )  # fmt: skip
    await client.repo_token(INSTALLATION, REPO)
    await client.aclose()

    timeout = {"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}
    assert len(seen) == 8
    assert {(version, agent, str(limits)) for _, version, agent, limits in seen} == {
        ("2022-11-28", "ScaleMesh", str(timeout))
    }


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("create_comment", "not json"),
        ("create_comment", b"\xff\xfe"),
        ("create_comment", ["a", "list"]),
        ("create_comment", {"id": "7"}),
        ("create_comment", {"id": True}),
        ("create_deployment", {"message": "Auto-merged main into feature on deployment."}),
    ],
)
async def test_malformed_answers(
    github: FakeGitHubApi, client: GitHubAppClient, route: str, body: Any
) -> None:
    github.fail(route, status=201, body=body)

    async def call() -> int:
        if route == "create_comment":
            return await client.create_comment(INSTALLATION, REPO, 5, "x")
        return await client.create_deployment(
            INSTALLATION,
            REPO,
            sha=SHA,
            environment="Production",
            description="",
            transient=False,
            production=True,
        )

    with pytest.raises(GitHubError) as caught:
        await call()
    assert caught.value.status is None


@pytest.mark.parametrize(
    "body",
    [
        {"expires_at": "2099-01-01T00:00:00Z"},
        {"token": "", "expires_at": "2099-01-01T00:00:00Z"},
        {"token": "ghs_x"},
        {"token": "ghs_x", "expires_at": "tomorrow"},
    ],
)
async def test_malformed_token_answers(
    github: FakeGitHubApi, client: GitHubAppClient, body: dict[str, str]
) -> None:
    github.fail("access_tokens", status=201, body=body)

    with pytest.raises(GitHubError, match="token"):
        await client.repo_token(INSTALLATION, REPO)
    with pytest.raises(GitHubError, match="token"):
        await status(client)
    assert github.commit_statuses == {}


async def test_malformed_comment_list(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    for body in ("<html>", {"message": "not a list"}, [1, 2]):
        github.fail("list_comments", status=200, body=body)
        with pytest.raises(GitHubError, match="look for our comment"):
            await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    github.fail("list_comments", status=200, body=[{"id": "x", "body": MARKER}])
    with pytest.raises(GitHubError, match="has no id"):
        await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    github.fail("list_comments", status=200, body=[{"id": 1, "body": None}])
    assert await client.find_comment(INSTALLATION, REPO, 5, MARKER) is None


# --- lifecycle --------------------------------------------------------------------------------


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0
        self.closed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        self.closed += 1


async def test_one_transport_serves_every_call_and_closes_once(github: FakeGitHubApi) -> None:
    transport = CountingTransport(github.transport)
    client = GitHubAppClient(app_settings(), github.base_url, transport=transport)
    await status(client)
    await client.create_comment(INSTALLATION, REPO, 5, "x")
    await client.repo_token(INSTALLATION, REPO)
    assert (transport.requests, transport.closed) == (4, 0)

    await client.aclose()
    await client.aclose()
    assert transport.closed == 1

    with pytest.raises(GitHubError, match="closed"):
        await status(client)
    with pytest.raises(GitHubError, match="closed"):
        await client.repo_token(INSTALLATION, REPO)
    assert transport.requests == 4


async def test_the_real_transport_goes_through_respx_and_closes(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    await client.aclose()

    assert len(github.commit_statuses[(REPO, SHA)]) == 1


def test_works_from_another_thread(github: FakeGitHubApi) -> None:
    # As when the app runs under uvicorn in a thread of the test process.
    results: list[int] = []

    async def run() -> None:
        client = GitHubAppClient(app_settings(), github.base_url)
        results.append(await client.create_comment(INSTALLATION, REPO, 5, "from a thread"))
        await client.aclose()

    thread = threading.Thread(target=anyio.run, args=(run,))
    thread.start()
    thread.join(timeout=30)

    assert github.comments[results[0]].body == "from a thread"


def test_requests_to_other_hosts_pass_through(github: FakeGitHubApi) -> None:
    # A test talking to the app on loopback is not answered by the fake.
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert (answer.status_code, answer.text) == (200, "hello")
    assert github.calls == []


async def test_secrets_stay_out_of_logs_and_reprs(
    github: FakeGitHubApi, client: GitHubAppClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await status(client)
        build_token = await client.repo_token(INSTALLATION, REPO)
        github.fail("commit_status", status=500)
        with pytest.raises(GitHubError) as caught:
            await status(client)

    secrets_ = [github.tokens[0].token, build_token, "PRIVATE KEY"]
    rendered = [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    rendered += [repr(client), repr(client._tokens), str(caught.value), repr(caught.value)]
    assert any("installation token minted" in line for line in rendered)
    for secret in secrets_:
        assert not any(secret in line for line in rendered)


# --- wiring -----------------------------------------------------------------------------------


async def test_github_from_settings(make_settings: Callable[..., Settings]) -> None:
    assert github_from_settings(make_settings()) is None

    github = FakeGitHubApi("https://ghe.example.com/api/v3")
    client = github_from_settings(make_settings(**github.environ()))
    assert isinstance(client, GitHubAppClient)
    assert isinstance(client, GitHubApi)
    assert "ghe.example.com/api/v3/" in repr(client)
    await client.aclose()


def test_fake_answers_satisfy_githubkit_models(github: FakeGitHubApi) -> None:
    """Code reading githubkit's parsed models (not only our client) can use the fake."""
    now = time.time()
    assertion = jwt.encode(
        {"iss": str(APP_ID), "iat": int(now) - 60, "exp": int(now) + 540},
        app_private_key(),
        algorithm="RS256",
    )

    def send(method: str, path: str, body: Any = None, auth: str = "") -> httpx.Response:
        request = httpx.Request(
            method, f"{github.base_url}{path}", json=body, headers={"Authorization": auth}
        )
        return github.handle(request)

    minted = send("POST", mint_path(), None, f"Bearer {assertion}")
    assert minted.status_code == 201
    token = InstallationToken.model_validate(minted.json())
    auth = f"token {token.token}"
    Status.model_validate(
        send("POST", f"/repos/{REPO}/statuses/{SHA}", {"state": "success"}, auth).json()
    )
    deployment = Deployment.model_validate(
        send("POST", f"/repos/{REPO}/deployments", {"ref": SHA}, auth).json()
    )
    DeploymentStatus.model_validate(
        send(
            "POST", f"/repos/{REPO}/deployments/{deployment.id}/statuses", {"state": "queued"}, auth
        ).json()
    )
    comment = IssueComment.model_validate(
        send("POST", f"/repos/{REPO}/issues/5/comments", {"body": "b"}, auth).json()
    )
    IssueComment.model_validate(
        send("PATCH", f"/repos/{REPO}/issues/comments/{comment.id}", {"body": "c"}, auth).json()
    )
    listed = send("GET", f"/repos/{REPO}/issues/5/comments", None, auth)
    assert [IssueComment.model_validate(c).id for c in listed.json()] == [comment.id]


def test_fake_refuses_what_github_refuses(github: FakeGitHubApi) -> None:
    def send(method: str, path: str, auth: str | None, body: Any = None) -> int:
        headers = {"Authorization": auth} if auth else {}
        request = httpx.Request(method, f"{github.base_url}{path}", json=body, headers=headers)
        return github.handle(request).status_code

    wrong_key = jwt.encode({"iss": str(APP_ID)}, "k" * 32, algorithm="HS256")
    assert send("POST", mint_path(), None) == 401
    assert send("POST", mint_path(), f"Bearer {wrong_key}") == 401
    other_app = jwt.encode({"iss": "1"}, app_private_key(), algorithm="RS256")
    assert send("POST", mint_path(), f"Bearer {other_app}") == 401
    assert send("POST", f"/repos/{REPO}/statuses/{SHA}", "token ghs_nope", {}) == 401
    assert send("GET", "/rate_limit", None) == 404
    assert send("DELETE", f"/repos/{REPO}/issues/comments/1", None) == 404
    with pytest.raises(ValueError, match="unknown route"):
        github.fail("delete_repo")
