"""`GET /deployments/{id}/diff?against=production` and the deployment page's "Changes" section:
two manifest reads, remembered per pair; a clear refusal for each reason there is no diff."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from app.deployments import manifests
from app.storage import StorageError
from builder.spec import MANIFEST
from tests.support.api import PASSWORD, Client, bearer
from tests.support.counting_storage import CountingStorage
from tests.support.deploying import deploy, ship
from tests.support.deployments import FakeRunner
from tests.support.pages import HTML

HOSTILE = "<script>alert(1)</script>.js"


def record(size: int, sha: str, br: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "size": size,
        "sha256": sha * 64,
        "content_type": extra.get("content_type", "text/javascript; charset=utf-8"),
        "cache_control": "public, max-age=0, must-revalidate",
        "encodings": ["br"] if br is not None else [],
        "br_size": size if br is None else br,
    }


PRODUCTION_FILES = {
    "index.html": record(2000, "a", 700, content_type="text/html; charset=utf-8"),
    "assets/app.js": record(100_000, "b", 30_000),
    "old.html": record(800, "c", content_type="text/html; charset=utf-8"),
}
PREVIEW_FILES = {
    "index.html": record(2000, "a", 700, content_type="text/html; charset=utf-8"),
    "assets/app.js": record(110_000, "d", 33_000),
    HOSTILE: record(50, "e"),
}


def storage_of(client: Client) -> Any:
    return client.app.state.services.reconciler.storage


def write_manifest(client: Client, runner: FakeRunner, deployment_id: str, files: Any) -> None:
    key = runner.spec_of(deployment_id).output_prefix + MANIFEST
    data = files if isinstance(files, bytes) else json.dumps({"version": 1, "files": files})
    client.run(
        lambda: storage_of(client).put(key, data if isinstance(data, bytes) else data.encode())
    )


def production_and_preview(client: Client, runner: FakeRunner, token: str) -> tuple[str, str]:
    production = ship(client, runner, token)["id"]
    write_manifest(client, runner, production, PRODUCTION_FILES)
    preview = ship(client, runner, token, ref="feature/login")["id"]
    write_manifest(client, runner, preview, PREVIEW_FILES)
    return production, preview


def asked(client: Client, token: str, deployment_id: str, **query: str) -> Any:
    query.setdefault("against", "production")
    return client.get(f"/deployments/{deployment_id}/diff", params=query, headers=bearer(token))


def counted(client: Client) -> CountingStorage:
    service = client.app.state.services.deployments
    service.diffs.storage = counting = CountingStorage(service.diffs.storage)
    return counting


def test_a_preview_diffs_against_production_reading_two_manifests_once(
    client: Client, runner: FakeRunner, token: str
) -> None:
    production, preview = production_and_preview(client, runner, token)
    counting = counted(client)

    answer = asked(client, token, preview)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["deployment"] == preview
    assert body["against"] == production
    assert body["added"] == {"count": 1, "names": [HOSTILE]}
    assert body["removed"] == {"count": 1, "names": ["old.html"]}
    assert body["changed"] == {"count": 1, "names": ["assets/app.js"]}
    assert body["unchanged"] == 1
    assert body["before"] == {"raw": 102_800, "br": 31_500}
    assert body["after"] == {"raw": 112_050, "br": 33_750}
    assert body["largest"][0] == {
        "path": "assets/app.js",
        "before": 100_000,
        "after": 110_000,
        "delta": 10_000,
        "br_delta": 3_000,
    }
    assert body["pages_added"] == {"count": 0, "names": []}
    assert body["pages_removed"] == {"count": 1, "names": ["/old.html"]}
    assert counting.streamed > 0
    assert (counting.whole, counting.sized) == ([], [])
    read = counting.streamed

    assert asked(client, token, preview).json() == body  # the same pair: no read again
    assert counting.streamed == read


def test_only_the_newest_pairs_are_remembered(
    client: Client, runner: FakeRunner, token: str
) -> None:
    production, preview = production_and_preview(client, runner, token)
    counting = counted(client)
    client.app.state.services.deployments.diffs.remembered = 1
    asked(client, token, preview)
    first = counting.streamed
    asked(client, token, production)  # another pair: the first one is let go
    second = counting.streamed
    asked(client, token, preview)
    assert counting.streamed == second + first


def test_production_against_itself_is_one_read_and_no_change(
    client: Client, runner: FakeRunner, token: str
) -> None:
    production, _ = production_and_preview(client, runner, token)
    counting = counted(client)
    body = asked(client, token, production).json()
    assert body["against"] == production
    assert (body["added"]["count"], body["removed"]["count"], body["changed"]["count"]) == (0, 0, 0)
    assert body["before"] == body["after"]
    assert counting.streamed == len(json.dumps({"version": 1, "files": PRODUCTION_FILES}))


def test_no_production_yet(client: Client, runner: FakeRunner, token: str) -> None:
    preview = ship(client, runner, token, ref="feature/login")["id"]
    answer = asked(client, token, preview)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found", answer.text
    assert "no production deployment" in answer.json()["detail"]


def test_an_unfinished_deployment_has_nothing_to_compare(
    client: Client, runner: FakeRunner, token: str
) -> None:
    queued = deploy(client, token)["id"]
    answer = asked(client, token, queued)
    assert (answer.status_code, answer.json()["error"]) == (409, "conflict")
    assert "queued" in answer.json()["detail"]


def test_a_manifest_gone_from_storage(client: Client, runner: FakeRunner, token: str) -> None:
    production, preview = production_and_preview(client, runner, token)
    key = runner.spec_of(production).output_prefix + MANIFEST
    client.run(lambda: storage_of(client).delete(key))
    answer = asked(client, token, preview)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert "Production's files are gone" in answer.json()["detail"]


@pytest.mark.parametrize(
    "manifest",
    [
        b'{"files": {"a": {"size": -3}}}',
        b'{"files": {"caf\xe9.html": {"size": 3}}}',  # msgspec: UnicodeDecodeError, not DecodeError
    ],
)
def test_a_malformed_manifest(
    client: Client, runner: FakeRunner, token: str, manifest: bytes
) -> None:
    _, preview = production_and_preview(client, runner, token)
    write_manifest(client, runner, preview, manifest)
    answer = asked(client, token, preview)
    assert (answer.status_code, answer.json()["error"]) == (409, "conflict")
    assert "malformed" in answer.json()["detail"]


def test_a_manifest_too_large_is_not_read_whole(
    client: Client, runner: FakeRunner, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, preview = production_and_preview(client, runner, token)
    monkeypatch.setattr(manifests, "MAX_MANIFEST_BYTES", 100)
    counting = counted(client)
    answer = asked(client, token, preview)
    assert (answer.status_code, answer.json()["error"]) == (409, "conflict")
    assert "larger than" in answer.json()["detail"]
    assert counting.streamed <= 101


class BrokenStorage(CountingStorage):
    def stream(
        self, key: str, start: int = 0, stop: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        raise StorageError("the bucket is away")


def test_storage_down(client: Client, runner: FakeRunner, token: str) -> None:
    _, preview = production_and_preview(client, runner, token)
    service = client.app.state.services.deployments
    service.diffs.storage = BrokenStorage(service.diffs.storage)
    answer = asked(client, token, preview)
    assert (answer.status_code, answer.json()["error"]) == (503, "unavailable")


def test_only_against_production(client: Client, runner: FakeRunner, token: str) -> None:
    _, preview = production_and_preview(client, runner, token)
    answer = asked(client, token, preview, against="main")
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")


def test_someone_else_cannot_see_it(client: Client, runner: FakeRunner, token: str) -> None:
    _, preview = production_and_preview(client, runner, token)
    from tests.support.api import sign_up

    other = sign_up(client, "eve@example.com")
    answer = asked(client, other, preview)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


def signed_in_browser(client: Client) -> None:
    response = client.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 200


def test_the_page_shows_the_diff_with_names_escaped(
    client: Client, runner: FakeRunner, token: str
) -> None:
    production, preview = production_and_preview(client, runner, token)
    signed_in_browser(client)
    page = client.get(f"/deployments/{preview}", headers=HTML).text
    assert 'id="changes"' in page
    assert f"<code>{production[:8]}</code>" in page
    assert "1 added, 1 removed, 1 changed, 1 unchanged." in page
    assert "<td>Brotli</td>" in page
    assert "<td>30.8 KiB</td>" in page
    assert "+2.2 KiB" in page
    assert "<li><code>&lt;script&gt;alert(1)&lt;/script&gt;.js</code></li>" in page
    assert HOSTILE not in page
    assert "<summary>Pages removed (1)</summary>" in page
    assert "<tr><td><code>assets/app.js</code></td><td>97.7 KiB</td><td>107.4 KiB</td>" in page


def test_production_s_page_compares_it_with_itself(
    client: Client, runner: FakeRunner, token: str
) -> None:
    production, _ = production_and_preview(client, runner, token)
    signed_in_browser(client)
    page = client.get(f"/deployments/{production}", headers=HTML).text
    assert f"<code>{production[:8]}</code></a> (this one)." in page
    assert "Same files." in page
    assert 'id="changes-largest"' not in page


def test_the_page_says_why_there_is_no_diff_and_shows_none_before_ready(
    client: Client, runner: FakeRunner, token: str
) -> None:
    preview = ship(client, runner, token, ref="feature/login")["id"]
    queued = deploy(client, token)["id"]
    signed_in_browser(client)
    page = client.get(f"/deployments/{preview}", headers=HTML).text
    assert "has no production deployment to compare with yet" in page
    assert 'id="changes"' not in client.get(f"/deployments/{queued}", headers=HTML).text
