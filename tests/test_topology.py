"""The production topology as one system, end to end and under faults (issue 16, point 1).

Two `scalemesh serve api` replicas and a proxy on PostgreSQL, a Redis and a moto S3 of
their own, with the GitHub fake over HTTP (`tests.support.topology`): a signed push is built
once and served, pushes spread over both replicas each build once, a replica killed mid-build
or Redis stopped mid-build still ends `ready` with the whole log, the log replays from S3, a
promote through the other replica reaches the proxy within a second, and the proxy serves on
with both replicas down. One topology serves every test of the module; `tests/conftest.py`
keeps the module on one xdist worker, in file order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from app.logs.archive import archive_key
from tests.support.services import PostgresDatabases, postgres_url
from tests.support.topology import PROJECT, Topology, topology
from tests.support.topology_site import tick_lines
from tests.support.waiting import wait_until

# Setting the topology up is part of the first test's time; builds take seconds each.
pytestmark = pytest.mark.timeout(300)

PROMOTE_WITHIN_S = 1.0
REDIS_DOWN_S = 5.0


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    postgres = PostgresDatabases(postgres_url())
    with topology(tmp_path_factory.mktemp("topology"), postgres) as world:
        yield world


@pytest.fixture
def world(running: Topology) -> Topology:
    """The topology with every process up, whatever the test before stopped."""
    running.ensure_up()
    return running


def lines(events: list[dict[str, Any]]) -> list[str]:
    return [event["text"] for event in events if event.get("type") == "line"]


def builds_started(events: list[dict[str, Any]]) -> int:
    """How many times a replica started a build of it (each start logs "Building <sha>")."""
    return sum(1 for text in lines(events) if text.startswith("Building "))


def wait_for_line(world: Topology, deployment_id: str, text: str) -> None:
    """Until the build's live log shows `text` (the build is then surely running)."""
    api = world.apis[1]
    wait_until(
        lambda: text in lines(world.log_events(api, deployment_id)),
        within=60,
        interval=0.1,
        what=lambda: f"{text!r} logged\n{world.describe(deployment_id)}",
    )


def test_a_signed_push_is_built_once_stored_served_and_reported(world: Topology) -> None:
    sha = world.site.commit("hello from a push")
    world.push(world.apis[0], sha)

    deployment = world.deployment_of(sha)
    ended = world.wait_ended(deployment["id"])
    assert (ended["state"], ended["attempts"]) == ("ready", 1), ended
    assert builds_started(world.log_events(world.apis[1], deployment["id"])) == 1

    stored = world.stored_keys()
    assert any(
        key.startswith("__outputs/") and key.endswith(f"/{deployment['id']}/index.html")
        for key in stored
    ), stored
    view = world.view(world.apis[1], deployment["id"])
    for url in (view["url"], *view["aliases"]):
        page = world.proxy_get(url)
        assert page.status_code == 200, (url, page.text)
        assert "hello from a push" in page.text

    wait_until(
        lambda: (world.statuses(sha) or [{}])[-1].get("state") == "success",
        what=lambda: f"a success status for {sha}: {world.statuses(sha)}",
    )
    told = world.statuses(sha)
    assert told[0]["state"] == "pending"
    assert told[-1]["target_url"] == view["url"]


def test_b_pushes_spread_over_both_replicas_each_build_once(world: Topology) -> None:
    branches = [f"spread-{n}" for n in range(4)]
    shas = [world.site.commit(f"spread {n}", branch=branch) for n, branch in enumerate(branches)]
    for n, (branch, sha) in enumerate(zip(branches, shas, strict=True)):
        world.push(world.apis[n % 2], sha, branch)

    deployments = [world.deployment_of(sha) for sha in shas]
    for deployment in deployments:
        ended = world.wait_ended(deployment["id"])
        assert (ended["state"], ended["attempts"]) == ("ready", 1), ended
        assert builds_started(world.log_events(world.apis[0], deployment["id"])) == 1
    assert len(world.deployments("sha = ANY($1::text[])", shas)) == len(shas)
    for sha, n in zip(shas, range(len(shas)), strict=True):
        view = world.view(world.apis[n % 2], world.deployment_of(sha)["id"])
        assert f"spread {n}" in world.proxy_get(view["url"]).text


def test_c_a_replica_killed_mid_build_still_ends_ready(world: Topology) -> None:
    sha = world.site.commit("survives a crash", branch="crash", ticks=16)
    world.push(world.apis[0], sha, "crash")
    deployment = world.deployment_of(sha)
    wait_for_line(world, deployment["id"], tick_lines(16)[1])

    [row] = world.deployments("sha = $1", sha)
    builder_pid = int(row["runner_handle"].rsplit(":", 1)[1])
    builder_replica = world.replica_of_pid(builder_pid)
    builder_replica.kill()

    world.wait_ready(deployment["id"])
    [survivor] = [api for api in world.apis if api is not builder_replica]
    view = world.view(survivor, deployment["id"])
    assert "survives a crash" in world.proxy_get(view["url"]).text
    log = lines(world.log_events(survivor, deployment["id"]))
    assert "done" in log
    assert all(line in log for line in tick_lines(16))


def test_d_redis_stopped_mid_build_loses_no_line(world: Topology) -> None:
    ticks = 40
    sha = world.site.commit("survives redis", branch="redis", ticks=ticks)
    world.push(world.apis[1], sha, "redis")
    deployment = world.deployment_of(sha)
    wait_for_line(world, deployment["id"], tick_lines(ticks)[2])

    world.redis.stop()
    time.sleep(REDIS_DOWN_S)  # the outage itself: the build goes on logging meanwhile
    world.redis.start()

    ended = world.wait_ended(deployment["id"])
    assert (ended["state"], ended["attempts"]) == ("ready", 1), world.describe(deployment["id"])
    events = world.log_events(world.apis[0], deployment["id"])
    built = [line for line in lines(events) if line.startswith("tick ")]
    assert built == tick_lines(ticks)
    assert "done" in lines(events)
    assert events[-1]["type"] == "result"
    assert events[-1]["state"] == "ready"


def test_e_the_websocket_replays_from_the_archive_once_redis_lost_the_stream(
    world: Topology,
) -> None:
    sha = world.site.commit("archived", branch="archive", ticks=3)
    world.push(world.apis[0], sha, "archive")
    deployment = world.deployment_of(sha)
    world.wait_ready(deployment["id"])
    assert archive_key(deployment["id"]) in world.stored_keys("__logs/")
    before = world.log_events(world.apis[0], deployment["id"])

    world.redis.stop()
    world.redis.start()  # empty: the live stream is gone

    api = world.apis[1]
    url = f"ws://{api.url.removeprefix('http://')}/deployments/{deployment['id']}/logs/ws"
    replayed: list[dict[str, Any]] = []
    with connect(
        url, additional_headers={"Authorization": f"Bearer {world.token}"}, open_timeout=10
    ) as socket:
        for frame in socket:
            replayed.extend(json.loads(frame))
    assert [event for event in replayed if event["type"] != "heartbeat"] == before
    assert replayed[-1]["type"] == "result"
    assert tick_lines(3) == [line for line in lines(replayed) if line.startswith("tick ")]


def test_f_a_promote_through_the_other_replica_is_served_within_a_second(
    world: Topology,
) -> None:
    first, second = world.site.commit("promoted one"), world.site.commit("promoted two")
    ids = []
    for sha in (first, second):
        world.push(world.apis[0], sha)
        deployment = world.deployment_of(sha)
        world.wait_ready(deployment["id"])
        ids.append(deployment["id"])
    production = world.production_url
    assert "promoted two" in world.proxy_get(production).text

    promoted = world.api_call(world.apis[1], "POST", f"/deployments/{ids[0]}/promote")
    assert promoted.status_code == 200, promoted.text
    since = time.monotonic()
    wait_until(
        lambda: "promoted one" in world.proxy_get(production).text,
        within=10,
        interval=0.02,
        what="the promoted deployment served",
    )
    took = time.monotonic() - since
    assert took < PROMOTE_WITHIN_S, f"served {took:.2f} s after the promote"
    # Promoting the older one pinned production there (a rollback): unpinned, the next
    # push goes live again.
    unpinned = world.api_call(world.apis[0], "DELETE", f"/projects/{PROJECT}/production-pin")
    assert unpinned.status_code == 200, unpinned.text
    wait_until(
        lambda: "promoted two" in world.proxy_get(production).text,
        within=10,
        interval=0.02,
        what="production back on the newest",
    )


def test_g_the_proxy_serves_on_with_both_replicas_down(world: Topology) -> None:
    sha = world.site.commit("no api needed")
    world.push(world.apis[0], sha)
    deployment = world.deployment_of(sha)
    world.wait_ready(deployment["id"])
    view = world.view(world.apis[1], deployment["id"])

    for api in world.apis:
        api.kill()

    # Hosts and files nobody asked the proxy for yet: nothing of them is cached.
    for url in (view["url"], *view["aliases"]):
        about = world.proxy_get(url, "/about")
        assert about.status_code == 200, about.text
        assert "About no api needed" in about.text
    home = world.proxy_get(world.production_url)
    assert home.status_code == 200, home.text
    assert "no api needed" in home.text
