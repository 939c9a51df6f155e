"""Going live and wrapping up are steps any replica retries until done; a clone token GitHub
could not mint just now is asked for again later."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.builds.specs import CloneTokenDelayed, CloneTokenUnavailable
from app.deployments import publish
from app.logs.archive import archive_key, read_archive
from app.logs.bus import is_result
from app.reconcile import Reconciler
from app.settings import Settings
from app.tables import Deployment
from builder.events import LogEvent
from builder.spec import BuildSpec
from tests.support.api import Client
from tests.support.deploying import aliases, built, deploy, fetch, replica
from tests.support.deployments import FakeRunner, tick


def row(client: Client, deployment_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.run(
        lambda: (
            Deployment.select(
                Deployment.state,
                Deployment.publish_pending,
                Deployment.finished_at,
                Deployment.finish_claimed_until,
                Deployment.attempts,
                Deployment.start_after,
                Deployment.error_code,
            )
            .where(Deployment.id == deployment_id)
            .first()
        )
    )
    return found


def results(events: Sequence[LogEvent]) -> list[LogEvent]:
    return [event for event in events if is_result(event)]


def count_finished(client: Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The final states the finisher reports (to the build metrics), as it reports them."""
    counted: list[str] = []
    finisher = client.app.state.services.reconciler.finisher
    monkeypatch.setattr(
        finisher, "on_finished", lambda state, started_at: counted.append(state.value)
    )
    return counted


def tick_through_a_crash(client: Client) -> None:
    """A pass that may die half way, as its process would."""
    with contextlib.suppress(ConnectionError):
        tick(client)


def test_a_crash_between_ready_and_publishing_is_published_by_a_later_pass(
    client: Client,
    token: str,
    runner: FakeRunner,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = built(client, runner, token)
    real_point = publish.point_alias

    async def crash(hostname: str, project_id: int, deployment_id: str) -> bool:
        raise ConnectionError("the process died here")

    monkeypatch.setattr(publish, "point_alias", crash)
    tick_through_a_crash(client)
    assert fetch(client, token, deployment["id"])["state"] == "ready"
    assert aliases(client) == {}
    monkeypatch.setattr(publish, "point_alias", real_point)

    client.run(replica(client, settings, runner, "other").tick)

    assert set(aliases(client).values()) == {deployment["id"]}
    seen = row(client, deployment["id"])
    assert seen["publish_pending"] is False
    assert seen["finished_at"] is not None
    archived = client.run(
        lambda: read_archive(client.app.state.services.reconciler.storage, deployment["id"])
    )
    [result] = results(archived or [])
    assert result["state"] == "ready"
    assert result["url"]


def test_a_ready_deployment_is_wrapped_up_only_once_published(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = built(client, runner, token)

    async def refuse(hostnames: list[str]) -> None:
        raise ConnectionError("Redis is restarting")

    reconciler: Reconciler = client.app.state.services.reconciler
    monkeypatch.setattr(reconciler, "announce", refuse)

    tick(client)
    tick(client)

    seen = row(client, deployment["id"])
    assert (seen["state"], seen["publish_pending"], seen["finished_at"]) == ("ready", True, None)


def test_a_redis_error_while_writing_the_result_is_retried_and_the_result_is_written_once(
    client: Client,
    token: str,
    runner: FakeRunner,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = built(client, runner, token)
    bus = client.app.state.services.bus
    storage = client.app.state.services.reconciler.storage
    real_append = bus.append
    failures: list[int] = []

    async def reply_lost(deployment_id: str, event: LogEvent) -> int:
        seq: int = await real_append(deployment_id, event)
        if is_result(event) and not failures:
            # Redis took the command, then the connection closed before its answer came.
            failures.append(seq)
            raise ConnectionError("Connection closed by server.")
        return seq

    monkeypatch.setattr(bus, "append", reply_lost)

    tick_through_a_crash(client)
    assert "finishing failed" in caplog.messages
    assert row(client, deployment["id"])["finished_at"] is None
    assert row(client, deployment["id"])["finish_claimed_until"] is None
    client.run(replica(client, settings, runner, "other").tick)

    seen = row(client, deployment["id"])
    assert seen["finished_at"] is not None
    archived = client.run(lambda: read_archive(storage, deployment["id"]))
    assert archived is not None
    [result] = results(archived)
    assert result["state"] == "ready"
    assert "built 3 pages" in [event.get("text") for event in archived]
    assert client.run(lambda: bus.read(deployment["id"])) == []


def test_a_crash_after_archiving_does_not_write_a_second_result(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = built(client, runner, token)
    bus = client.app.state.services.bus
    storage = client.app.state.services.reconciler.storage
    real_forget = bus.forget

    async def forget_then_die(deployment_id: str) -> None:
        await real_forget(deployment_id)
        raise ConnectionError("the process died here")

    monkeypatch.setattr(bus, "forget", forget_then_die)
    tick_through_a_crash(client)
    monkeypatch.setattr(bus, "forget", real_forget)
    assert row(client, deployment["id"])["finished_at"] is None

    tick(client)

    assert row(client, deployment["id"])["finished_at"] is not None
    archived = client.run(lambda: read_archive(storage, deployment["id"]))
    assert len(results(archived or [])) == 1
    assert client.run(lambda: storage.exists(archive_key(deployment["id"])))


def test_a_wrap_up_another_replica_holds_is_left_to_it(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = built(client, runner, token)
    held = datetime.now(UTC) + timedelta(seconds=30)
    real_finish = client.app.state.services.reconciler.finisher.finish

    async def held_elsewhere(deployment_id: str) -> bool:
        await Deployment.update({Deployment.finish_claimed_until: held}).where(
            Deployment.id == deployment_id
        )
        return bool(await real_finish(deployment_id))

    client.app.state.services.reconciler.finisher.finish = held_elsewhere

    tick(client)

    seen = row(client, deployment["id"])
    assert (seen["state"], seen["finished_at"]) == ("ready", None)


def test_a_clone_token_github_cannot_mint_just_now_is_asked_for_again_later(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy(client, token)
    reconciler: Reconciler = client.app.state.services.reconciler
    real_make = reconciler.specs.make
    waits: list[float | None] = [120.0, None]

    async def busy(deployment_id: str) -> BuildSpec:
        if waits:
            raise CloneTokenDelayed("GitHub gave no token just now", waits.pop(0))
        return await real_make(deployment_id)

    monkeypatch.setattr(reconciler.specs, "make", busy)

    before = datetime.now(UTC)
    tick(client)
    seen = row(client, deployment["id"])
    assert (seen["state"], seen["attempts"]) == ("queued", 0)
    assert seen["start_after"] >= before + timedelta(seconds=119)  # GitHub's Retry-After
    tick(client)
    assert runner.builds == {}  # not before GitHub said

    client.run(
        lambda: Deployment.update({Deployment.start_after: datetime.now(UTC)}).where(
            Deployment.id == deployment["id"]
        )
    )
    tick(client)
    seen = row(client, deployment["id"])
    assert (seen["state"], seen["attempts"]) == ("queued", 0)
    assert seen["start_after"] >= datetime.now(UTC) + timedelta(seconds=10)  # the default wait

    client.run(
        lambda: Deployment.update({Deployment.start_after: datetime.now(UTC)}).where(
            Deployment.id == deployment["id"]
        )
    )
    tick(client)
    assert row(client, deployment["id"])["state"] == "building"
    assert row(client, deployment["id"])["attempts"] == 1
    assert runner.spec_of(deployment["id"])
    log = client.run(lambda: client.app.state.services.bus.read(deployment["id"]))
    assert any("trying again in 120 s" in str(event.get("text")) for event in log)


def test_a_clone_token_github_refuses_fails_the_build(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy(client, token)
    reconciler: Reconciler = client.app.state.services.reconciler

    async def refused(deployment_id: str) -> BuildSpec:
        raise CloneTokenUnavailable("GitHub gave no token: the App lost access")

    monkeypatch.setattr(reconciler.specs, "make", refused)

    tick(client)

    seen = row(client, deployment["id"])
    assert (seen["state"], seen["error_code"]) == ("failed", "clone_token_unavailable")
    assert runner.builds == {}


def test_a_deferred_build_cancelled_meanwhile_is_not_queued_again(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy(client, token)
    reconciler: Reconciler = client.app.state.services.reconciler

    async def cancelled_meanwhile(deployment_id: str) -> BuildSpec:
        await Deployment.update({Deployment.state: "cancelled"}).where(
            Deployment.id == deployment_id
        )
        raise CloneTokenDelayed("GitHub gave no token just now", None)

    monkeypatch.setattr(reconciler.specs, "make", cancelled_meanwhile)

    tick(client)

    assert row(client, deployment["id"])["state"] == "cancelled"


def test_a_replica_that_lost_its_lease_does_not_count_the_build_twice(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = built(client, runner, token)
    counted = count_finished(client, monkeypatch)
    finisher = client.app.state.services.reconciler.finisher
    real_wrap_up = finisher._wrap_up

    async def overtaken(deployment_id: str) -> Any:
        ending = await real_wrap_up(deployment_id)
        # Too slow: the lease ran out and another replica wrapped it up meanwhile.
        await Deployment.update({Deployment.finished_at: datetime.now(UTC)}).where(
            Deployment.id == deployment_id
        )
        return ending

    monkeypatch.setattr(finisher, "_wrap_up", overtaken)

    tick(client)

    assert counted == []
    assert row(client, deployment["id"])["finished_at"] is not None


def test_a_finished_build_is_counted_once(
    client: Client, token: str, runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    built(client, runner, token)
    counted = count_finished(client, monkeypatch)

    tick(client)
    tick(client)

    assert counted == ["ready"]
