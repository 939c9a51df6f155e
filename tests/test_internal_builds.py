"""The builder's endpoints: the spec once per token, the log as checked NDJSON batches, both only
for the token's own build while it runs, and nothing once the build has finished."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.runners.api import RunStatus
from app.settings import Settings
from app.tables import EnvVar
from builder.spec import BuildLimits, BuildSpec
from tests.support.api import bearer
from tests.support.builds import CREDENTIALS, SECRET_VALUE, Builds, ScriptedGrants, open_builds
from tests.support.deploying import deploy
from tests.support.deployments import fail, tick


@pytest.fixture
def builds(settings: Settings) -> Iterator[Builds]:
    yield from open_builds(settings)


def line(text: str, stream: str = "stdout") -> dict[str, Any]:
    return {"type": "line", "ts": 1.0, "stream": stream, "text": text, "step": "build"}


def refusal(response: Any, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    detail: str = body["detail"]
    return detail


def test_the_spec_is_the_reconcilers_and_is_fetched_once(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)

    first = builds.fetch_spec(deployment_id, token)
    second = builds.fetch_spec(deployment_id, token)

    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    spec = BuildSpec.from_json(first.json())
    assert spec == builds.runner.spec_of(deployment_id)
    assert spec.env == {"API_KEY": SECRET_VALUE}
    assert spec.storage_credentials is None  # local storage: no upload grant
    assert spec.limits == BuildLimits()
    assert "spec was fetched already" in refusal(second, 409, "conflict")


def test_a_token_acts_for_its_own_build_only(builds: Builds) -> None:
    first, second = builds.building(), builds.building("feature/login")
    token = builds.token_for(first)
    builds.token_for(second)

    assert "another build" in refusal(builds.fetch_spec(second, token), 403, "forbidden")
    assert "another build" in refusal(builds.send(second, token, line("x")), 403, "forbidden")
    assert builds.log(second)[-1]["text"].startswith("Building")  # nothing was added
    assert builds.fetch_spec(first, token).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, bearer("nope"), {"Cookie": "scalemesh_session=x"}],
)
def test_a_builder_must_send_its_token(builds: Builds, headers: dict[str, str]) -> None:
    deployment_id = builds.building()
    builds.token_for(deployment_id)

    for path in ("spec", "events"):
        response = builds.client.post(f"/internal/builds/{deployment_id}/{path}", headers=headers)
        assert refusal(response, 401, "unauthorized")


def test_the_token_dies_when_the_build_finishes(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)
    assert builds.send(deployment_id, token, line("working")).status_code == 200

    fail(builds.client, builds.runner, deployment_id, "install failed")
    tick(builds.client)  # the loop fails the deployment, and finishing revokes the token

    assert refusal(builds.fetch_spec(deployment_id, token), 401, "unauthorized")
    assert refusal(builds.send(deployment_id, token, line("late")), 401, "unauthorized")
    assert builds.shown(deployment_id)["state"] == "failed"


def test_nothing_is_taken_once_the_deployment_has_ended(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)

    deploy(builds.client, builds.user_token)  # a newer push supersedes the build

    # Ended, not yet finished by the loop: the token still exists, and is refused.
    ended = builds.send(deployment_id, token, line("after the end"))
    assert "its build is over" in refusal(ended, 409, "conflict")
    tick(builds.client)
    assert refusal(builds.send(deployment_id, token, line("later")), 401, "unauthorized")


def test_log_events_reach_the_bus_as_the_build_sent_them(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)
    before = len(builds.log(deployment_id))

    response = builds.send(
        deployment_id,
        token,
        {"type": "step", "ts": 1.0, "step": "build", "status": "start"},
        {**line("built 3 pages"), "seq": 99, "url": "https://evil.example", "extra": 1},
        {"type": "end", "ts": 2.0, "ok": False, "error": "build failed: exit 1"},
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"events": 3}
    assert builds.log(deployment_id)[before:] == [
        {"type": "step", "ts": 1.0, "step": "build", "status": "start", "seq": before + 1},
        {**line("built 3 pages"), "seq": before + 2},
        {"type": "end", "ts": 2.0, "ok": False, "error": "build failed: exit 1", "seq": before + 3},
    ]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (
            {"type": "result", "ts": 1.0, "state": "ready", "error": None, "url": "https://x"},
            "Invalid value 'result'",
        ),
        ({"type": "line", "ts": 1.0, "stream": "stdout"}, "missing required field `text`"),
        ({"type": "line", "ts": 1.0, "stream": "tty", "text": "x"}, "`$.stream`"),
        ({"type": "line", "ts": 1.0, "stream": "stdout", "text": "x" * 8193}, "`$.text`"),
        ({"type": "step", "ts": 1.0, "step": "deploy", "status": "start"}, "`$.step`"),
        ({"type": "end", "ts": "now", "ok": True}, "`$.ts`"),
        ({"type": "end", "ts": 1.0}, "missing required field `ok`"),
    ],
)
def test_a_batch_with_a_bad_or_forged_event_is_refused_whole(
    builds: Builds, event: dict[str, Any], problem: str
) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)
    before = builds.log(deployment_id)

    response = builds.send(deployment_id, token, line("fine"), event)

    detail = refusal(response, 400, "invalid_request")
    assert detail.startswith("Log event 2: ")
    assert problem in detail
    assert builds.log(deployment_id) == before


def test_a_body_that_is_not_json_lines_is_refused(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)

    detail = refusal(builds.send_raw(deployment_id, token, b"hello\n"), 400, "invalid_request")
    assert detail.startswith("Log event 1: JSON is malformed")
    assert builds.send_raw(deployment_id, token, b"\n\n").json() == {"events": 0}


def test_a_line_that_is_not_utf8_is_refused_and_nothing_is_kept(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)
    before = builds.log(deployment_id)
    fine = json.dumps(line("fine")).encode()
    # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string, not DecodeError.
    bad = b'{"type": "line", "ts": 1.0, "stream": "stdout", "text": "caf\xe9", "step": "build"}'
    body = fine + b"\n" + bad + b"\n"

    detail = refusal(builds.send_raw(deployment_id, token, body), 400, "invalid_request")
    assert detail.startswith("Log event 2: ")
    assert "UTF-8" in detail
    assert builds.log(deployment_id) == before


def test_a_batch_larger_than_a_mebibyte_is_refused(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)

    response = builds.send_raw(deployment_id, token, b" " * (1024 * 1024 + 1))

    refusal(response, 413, "too_large")


def test_the_log_limit_stops_the_log_and_becomes_the_builds_reason(
    settings: Settings,
) -> None:
    tight = dataclasses.replace(settings, build_limits=BuildLimits(max_log_mb=1))
    for builds in open_builds(tight):
        deployment_id = builds.building()
        token = builds.token_for(deployment_id)
        chunk = [line("x" * 8000) for _ in range(60)]  # about 0.5 MB a batch

        statuses = [builds.send(deployment_id, token, *chunk).status_code for _ in range(3)]
        again = builds.send(deployment_id, token, line("more"))

        assert statuses == [200, 200, 413]
        detail = refusal(again, 413, "too_large")
        assert detail == "the build log passed 1 MB"
        said = [e for e in builds.log(deployment_id) if e.get("text") == detail]
        assert [(e["type"], e["stream"]) for e in said] == [("line", "stderr")]  # once
        # The builder exits failing without a word of its own: the limit is its reason.
        builds.runner.build_of(deployment_id).status = RunStatus.FAILED
        tick(builds.client)
        assert builds.shown(deployment_id)["error"] == detail


def test_a_spec_that_cannot_be_made_is_refused(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)
    # The project's env var can no longer be opened (a changed secret key, a damaged row).
    builds.client.run(lambda: EnvVar.update({EnvVar.value_sealed: b"damaged"}, force=True))

    detail = refusal(builds.fetch_spec(deployment_id, token), 409, "conflict")

    assert "cannot be decrypted" in detail


def test_the_spec_carries_the_upload_grant_and_a_failed_grant_can_be_retried(
    settings: Settings,
) -> None:
    grants = ScriptedGrants(failures=1)
    for builds in open_builds(settings, grants):
        deployment_id = builds.building()
        token = builds.token_for(deployment_id)

        busy = builds.fetch_spec(deployment_id, token)
        fetched = builds.fetch_spec(deployment_id, token)

        assert "try again" in refusal(busy, 503, "unavailable")
        assert fetched.status_code == 200, fetched.text
        spec = BuildSpec.from_json(fetched.json())
        assert spec.storage_credentials == CREDENTIALS
        assert grants.granted == [(spec.project_id, deployment_id, 900 + 60)]


def test_there_is_no_spec_for_a_deployment_that_is_gone(builds: Builds) -> None:
    specs = builds.client.app.state.services.reconciler.specs

    with pytest.raises(LookupError):
        builds.client.run(lambda: specs.make(str(uuid.uuid4())))


def test_an_account_and_a_build_cannot_stand_in_for_each_other(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)

    # The project owner's own API token is no build token: no spec (env values, clone token)
    # and no log lines written in the build's name.
    for path in ("spec", "events"):
        response = builds.client.post(
            f"/internal/builds/{deployment_id}/{path}", headers=bearer(builds.user_token)
        )
        assert refusal(response, 401, "unauthorized")
    # And a build's token opens nothing of the account's API: not even its own deployment.
    for path in (f"/deployments/{deployment_id}", "/projects", "/user"):
        assert builds.client.get(path, headers=bearer(token)).status_code == 401
    assert builds.log(deployment_id)[-1]["text"].startswith("Building")  # nothing was added
    assert builds.fetch_spec(deployment_id, token).status_code == 200  # still unused
