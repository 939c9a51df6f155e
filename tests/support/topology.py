"""Scale Mesh's production topology on one machine, for the end-to-end test of issue 16.

PostgreSQL (a fresh database), a `redis-server` of its own (the test stops it), moto's S3
server, the GitHub fake over HTTP, two `scalemesh serve api` replicas and one
`scalemesh serve proxy`: every piece a separate process but the fake, configured the
way README's "Production" section says (the secret key and the preview key set explicitly,
the proxy on a read-only database role), with the local runner in its sandbox.

`Topology` starts it all, then drives it as GitHub and a user would: signed deliveries to a
replica of the test's choosing, API calls with a bearer token, requests to the proxy by
`Host`. What happened is read where it lands: the database, the bucket, what the fake was told.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx

from proxy.readiness import READYZ_PATH
from tests.support.github_fake import FakeGitHubApi
from tests.support.github_server import github_over_http
from tests.support.ports import LOOPBACK, reserved_port
from tests.support.processes import cli_env, http_client, run_cli
from tests.support.redis_server import RedisServer
from tests.support.services import PostgresDatabases
from tests.support.sites import NPM_OFFLINE
from tests.support.topology_database import Database, drop_role, read_only_role
from tests.support.topology_processes import Service, moto_s3, scalemesh, stop_all
from tests.support.topology_site import Site
from tests.support.waiting import wait_until
from tests.support.webhooks import INSTALLATION, REPO, REPO_ID, payload, signature

BUCKET = "scalemesh-deployments"
ROOT_DOMAIN = "scalemesh.test"
PROJECT = "web"
EMAIL = "ops@example.com"
PASSWORD = "correct horse battery staple"
BUILD_S = 90.0
"""Deadline for a deployment to end, builds again after a crash included."""


def s3_client(endpoint_url: str) -> Any:
    """A boto3 client on the moto server, with the credentials every process of it uses."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Topology:
    """Everything running; see the module docstring. Made by `topology()`."""

    def __init__(
        self,
        *,
        github: FakeGitHubApi,
        redis: RedisServer,
        s3: Service,
        apis: tuple[Service, Service],
        proxy: Service,
        database: Database,
        site: Site,
        env: dict[str, str],
    ) -> None:
        self.github = github
        self.redis = redis
        self.s3 = s3
        self.apis = apis
        self.proxy = proxy
        self.database = database
        self.site = site
        self.env = env
        self.token = ""
        self.http = http_client()

    @property
    def production_url(self) -> str:
        """The project's production URL, whichever deployment it serves."""
        return f"http://{PROJECT}.{ROOT_DOMAIN}:{self.proxy.port}"

    # --- the processes ----------------------------------------------------------------------

    def ensure_up(self) -> None:
        """Every process running again, whatever an earlier path stopped."""
        if not self.redis.running:
            self.redis.start()
        services = (self.s3, *self.apis, self.proxy)
        for service in services:
            service.launch()
        for service in services:
            service.wait_ready()

    def replica_of_pid(self, pid: int) -> Service:
        """The API replica whose child process `pid` is (a local build runs as its child)."""
        status = Path(f"/proc/{pid}/status").read_text()
        parent = int(
            next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1]
        )
        for api in self.apis:
            if api.running and api.pid == parent:
                return api
        raise AssertionError(f"process {pid} (parent {parent}) is no replica's child")

    # --- as GitHub --------------------------------------------------------------------------

    def deliver(self, api: Service, event: str, body: dict[str, Any]) -> httpx.Response:
        """A signed delivery to `api`'s webhook, as GitHub sends it."""
        raw = json.dumps(body).encode()
        response = self.http.post(
            api.url + "/github/webhooks",
            content=raw,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature(raw),
                "Content-Type": "application/json",
            },
        )
        assert response.status_code in (200, 202), response.text
        return response

    def push(self, api: Service, sha: str, branch: str = "main") -> None:
        """GitHub's real push payload for `sha` on `branch`, which is now that branch's head."""
        self.github.refs.set_branch(REPO, branch, sha)
        body = payload("push.commits")
        body["ref"] = f"refs/heads/{branch}"
        body["after"] = sha
        body["head_commit"]["id"] = sha
        body["repository"]["clone_url"] = self.site.clone_url
        self.deliver(api, "push", body)

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        """The commit statuses GitHub received for `sha`, in order."""
        return [call.json for call in self.github.calls_to("POST", f"/repos/{REPO}/statuses/{sha}")]

    # --- as a user --------------------------------------------------------------------------

    def api_call(self, api: Service, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, api.url + path, headers=headers, **kwargs)

    def proxy_get(self, url: str, path: str = "/") -> httpx.Response:
        """GET `path` of the site at `url` (a deployment or alias URL) through the proxy."""
        host = urlsplit(url).netloc
        return self.http.get(self.proxy.url + path, headers={"Host": host})

    # --- what happened ----------------------------------------------------------------------

    def deployments(self, where: str = "TRUE", *args: object) -> list[dict[str, Any]]:
        """Deployment rows matching `where` (this module's own SQL, with $n arguments)."""
        columns = "id::text AS id, sha, branch, state, attempts, runner_handle, error"
        query = f"SELECT {columns} FROM scalemesh_deployment WHERE {where}"  # noqa: S608 - ours
        query += " ORDER BY created_at"
        return self.database.fetch(query, *args)

    def deployment_of(self, sha: str) -> dict[str, Any]:
        """The one deployment of `sha`, once the push has queued it."""
        rows = wait_until(lambda: self.deployments("sha = $1", sha), what=f"a deployment of {sha}")
        [row] = rows
        return row

    def wait_ended(self, deployment_id: str) -> dict[str, Any]:
        """The deployment once it is final and finished (its result written, its log archived)."""

        def ended() -> dict[str, Any] | None:
            [row] = self.database.fetch(
                "SELECT id::text AS id, state, attempts, error, finished_at "
                "FROM scalemesh_deployment WHERE id = $1",
                uuid.UUID(deployment_id),
            )
            return row if row["finished_at"] is not None else None

        return wait_until(
            ended, within=BUILD_S, interval=0.1, what=lambda: self.describe(deployment_id)
        )

    def wait_ready(self, deployment_id: str) -> dict[str, Any]:
        """`wait_ended`, and it ended `ready`."""
        ended = self.wait_ended(deployment_id)
        assert ended["state"] == "ready", self.describe(deployment_id)
        return ended

    def view(self, api: Service, deployment_id: str) -> dict[str, Any]:
        response = self.api_call(api, "GET", f"/deployments/{deployment_id}")
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def log_events(self, api: Service, deployment_id: str) -> list[dict[str, Any]]:
        response = self.api_call(
            api,
            "GET",
            f"/deployments/{deployment_id}/logs",
            headers={"Accept": "application/x-ndjson"},
        )
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines() if line]

    def stored_keys(self, prefix: str = "") -> list[str]:
        client = s3_client(self.s3.url)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def describe(self, deployment_id: str) -> str:
        """What to show when a wait fails: the row, and each process's latest output."""
        rows = self.database.fetch(
            "SELECT state, attempts, error, runner_handle, finished_at "
            "FROM scalemesh_deployment WHERE id = $1",
            uuid.UUID(deployment_id),
        )
        services = "\n".join(service.describe() for service in (*self.apis, self.proxy))
        return f"deployment {deployment_id} {rows} ending\n{services}"


def production_env(tmp: Path, *, database_url: str, redis_url: str, s3_url: str) -> dict[str, str]:
    """The environment README's "Production" section gives every process, on this machine."""
    env = cli_env(tmp / "data")
    env.update(
        {
            "SCALEMESH_DATABASE_URL": database_url,
            "SCALEMESH_REDIS_URL": redis_url,
            "SCALEMESH_STORAGE_URL": f"s3://{BUCKET}",
            "AWS_ENDPOINT_URL": s3_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            # A key ring of one key, as every replica must share it.
            "SCALEMESH_SECRET_KEY": f"k1:{secrets.token_hex(32)}",
            "SCALEMESH_PREVIEW_KEY": f"p1:{secrets.token_hex(32)}",
            "SCALEMESH_ROOT_DOMAIN": ROOT_DOMAIN,
            "SCALEMESH_SIGNUP": "first",
            "SCALEMESH_RUNNER": "local",
            "SCALEMESH_BUILD_TIMEOUT": "120",
            # Quick passes: the test waits for builds, not for the loop's nap.
            "SCALEMESH_RECONCILE_INTERVAL": "0.2",
            "SCALEMESH_MAX_CONCURRENT_BUILDS": "4",
            "SCALEMESH_LOG_LEVEL": "INFO",
        }
    )
    env.pop("AWS_PROFILE", None)
    return env


@contextmanager
def topology(tmp: Path, postgres: PostgresDatabases) -> Iterator[Topology]:
    """Start every piece, set up an account, a project and the App's installation; stop all."""
    with ExitStack() as stack:
        github = stack.enter_context(github_over_http())
        redis = stack.enter_context(RedisServer())
        s3 = moto_s3(tmp / "logs")
        stack.callback(s3.stop)
        s3.launch()  # it starts while the database is made and migrated
        database_url = postgres.new()
        stack.callback(postgres.drop_all)
        env = production_env(tmp, database_url=database_url, redis_url=redis.url, s3_url=s3.url)
        env.update(github.environ())
        migrated = run_cli("migrate", env=env)
        assert migrated.returncode == 0, migrated.stderr
        role, proxy_database_url = read_only_role(database_url)
        stack.callback(drop_role, database_url, role)
        s3.wait_ready()
        s3_client(s3.url).create_bucket(Bucket=BUCKET)

        proxy_port, api_ports = reserved_port(), (reserved_port(), reserved_port())
        # Every deployment URL the API hands out points at this proxy; the replicas stand
        # behind one public URL (a load balancer's), here the first's.
        env["SCALEMESH_DEPLOYMENT_URL_TEMPLATE"] = f"http://{{host}}:{proxy_port}"
        env["SCALEMESH_PUBLIC_URL"] = f"http://{LOOPBACK}:{api_ports[0]}"
        apis = tuple(
            scalemesh(
                f"api-{name}",
                "api",
                {**env, "SCALEMESH_DATA_DIR": str(tmp / f"data-{name}")},
                tmp / "logs",
                port=port,
                ready="/readyz",
            )
            for name, port in zip("ab", api_ports, strict=True)
        )
        # The proxy reads: a read-only database role, the preview key its only key (no
        # secret key, no App key, no webhook secret).
        kept_from_proxy = {"SCALEMESH_SECRET_KEY", *github.environ()}
        proxy_env = {
            **{name: value for name, value in env.items() if name not in kept_from_proxy},
            "SCALEMESH_DATA_DIR": str(tmp / "data-proxy"),
            "SCALEMESH_DATABASE_URL": proxy_database_url,
        }
        # Two workers, as README runs several: each has its own lookup cache to keep current.
        proxy = scalemesh(
            "proxy",
            "proxy",
            proxy_env,
            tmp / "logs",
            port=proxy_port,
            ready=READYZ_PATH,
            workers=2,
        )
        stack.callback(stop_all, (*apis, proxy))
        for service in (*apis, proxy):
            service.launch()
        for service in (*apis, proxy):
            service.wait_ready()

        database = Database(database_url)
        stack.callback(database.close)
        site = Site(tmp / "site")
        world = Topology(
            github=github,
            redis=redis,
            s3=s3,
            apis=(apis[0], apis[1]),
            proxy=proxy,
            database=database,
            site=site,
            env=env,
        )
        stack.callback(world.http.close)
        _set_up(world)
        yield world


def _set_up(world: Topology) -> None:
    """The first account from the shell, its project bound to the repository, the App installed."""
    created = run_cli("user", "create", EMAIL, "--password-stdin", env=world.env, stdin=PASSWORD)
    assert created.returncode == 0, created.stderr
    first = world.apis[0]
    response = world.http.post(
        first.url + "/user/login", json={"email": EMAIL, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    world.token = response.json()["token"]
    world.http.cookies.clear()
    response = world.api_call(
        first,
        "POST",
        "/project",
        json={
            "name": PROJECT,
            "repo": REPO,
            "production_branch": "main",
            "output_directory": "dist",
            "env": NPM_OFFLINE,
        },
    )
    assert response.status_code == 201, response.text
    # What linking the project as a GitHub user with push access does (tests.support.binding).
    world.database.execute(
        "UPDATE scalemesh_project SET github_repository_id = $1 WHERE slug = $2", REPO_ID, PROJECT
    )
    body = payload("installation.created")
    assert body["installation"]["id"] == INSTALLATION
    world.deliver(first, "installation", body)
    wait_until(
        lambda: world.database.fetch(
            "SELECT 1 FROM scalemesh_repository WHERE full_name = $1", REPO
        ),
        what="the installation's repositories recorded",
    )
