"""The GitHub App client's lifecycle: one transport, other threads and hosts, secrets in logs."""

from __future__ import annotations

import http.server
import logging
import threading
from typing import Any

import anyio
import httpx
import pytest

from app.github.api import GitHubError
from app.github.client import GitHubAppClient
from tests.support import github_client
from tests.support.github_client import INSTALLATION, REPO, SHA, app_settings, status
from tests.support.github_fake import FakeGitHubApi

pytestmark = pytest.mark.anyio

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
github = github_client.github
client = github_client.client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
