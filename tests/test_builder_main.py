"""`python -m builder` end to end: a real npm build from a real git repository, as a process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from builder import __main__ as entry
from builder.errors import Stopped
from builder.spec import MANIFEST, PREFIX, STEPS, BuildSpec
from tests.support.builder import (
    DEPLOYMENT_ID,
    PROJECT_ID,
    make_repo,
    make_spec,
    npm_env,
    parse_events,
)
from tests.support.services import redis_url
from tests.support.waiting import alive, gone

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
API_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


def process_env(spec: BuildSpec) -> dict[str, str]:
    """The test's own environment (coverage hooks, fake AWS credentials) plus the spec."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SCALEMESH_")}
    env["SCALEMESH_TEST_SECRET"] = "must not reach the build"
    return env | spec.to_env()


def build(spec: BuildSpec) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=process_env(spec),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return result.returncode, parse_events(result.stdout), result.stderr


def npm_spec(tmp_path: Path, **env: str) -> BuildSpec:
    repo, sha = make_repo(tmp_path / "repo", "npm")
    return make_spec(
        repo,
        sha,
        tmp_path / "storage",
        git_ref="main",
        token="ghs_e2eTokenValue1234567890",
        env={**npm_env(tmp_path), "API_KEY": API_KEY, **env},
    )


def deployed(tmp_path: Path) -> Path:
    return tmp_path / "storage" / "__outputs" / str(PROJECT_ID) / DEPLOYMENT_ID


def step_events(events: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    return [(e["step"], e["status"], e.get("ok")) for e in events if e["type"] == "step"]


def texts(events: list[dict[str, Any]], step: str) -> list[str]:
    return [e["text"] for e in events if e["type"] == "line" and e["step"] == step]


def test_an_npm_site_builds_and_deploys(tmp_path: Path) -> None:
    spec = npm_spec(tmp_path)

    code, events, stderr = build(spec)

    assert code == 0, stderr
    assert step_events(events) == [
        (step, status, ok) for step in STEPS for status, ok in (("start", None), ("end", True))
    ]
    assert events[-1]["type"] == "end"
    assert events[-1]["ok"] is True
    assert "Detected custom (npm)" in texts(events, "detect")
    assert "Running npm ci" in texts(events, "install")
    assert "Running npm run build" in texts(events, "build")
    build_lines = [
        (e["stream"], e["text"]) for e in events if e["type"] == "line" and e["step"] == "build"
    ]
    assert ("stdout", "> node build.js") in build_lines  # npm's own output, streamed
    assert ("stdout", "built 4 files") in build_lines
    assert ("stderr", "a warning on stderr") in build_lines
    assert ("stdout", "leaked: []") in build_lines  # no SCALEMESH_* or AWS_* in the build
    assert ("stdout", "the api key is ***") in build_lines
    everything = json.dumps(events)
    assert API_KEY not in everything
    assert spec.token not in everything

    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    files = manifest["files"]
    assert set(files) == {"index.html", "assets/app-1a2b3c4d.js", "data.json", "logo.png"}
    assert files["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert files["index.html"]["cache_control"] == "public, max-age=0, must-revalidate"
    assert files["assets/app-1a2b3c4d.js"]["content_type"] == "text/javascript; charset=utf-8"
    assert files["assets/app-1a2b3c4d.js"]["cache_control"] == (
        "public, max-age=31536000, immutable"
    )
    assert files["assets/app-1a2b3c4d.js"]["encodings"] == ["br", "gzip"]
    assert files["data.json"]["content_type"] == "application/json; charset=utf-8"
    assert files["data.json"]["encodings"] == []
    assert files["logo.png"]["content_type"] == "image/png"
    assert manifest["output_directory"] == "dist"
    assert all(manifest["steps"][step] >= 0 for step in STEPS)
    for name in files:
        assert (deployed(tmp_path) / name).is_file()
    assert (deployed(tmp_path) / "assets/app-1a2b3c4d.js.br").is_file()


def test_a_failing_build_exits_1_and_uploads_nothing(tmp_path: Path) -> None:
    code, events, _ = build(npm_spec(tmp_path, FIXTURE_FAIL="1"))

    assert code == 1
    assert events[-1]["type"] == "end"
    assert events[-1]["ok"] is False
    assert events[-1]["error"] == "build failed: npm run build exited with code 1"
    assert ("build", "end", False) in step_events(events)
    assert not any(e.get("step") == "upload" for e in events)
    assert "the build broke" in texts(events, "build")
    assert not (tmp_path / "storage").exists()


def test_sigterm_stops_the_build_and_everything_it_started(tmp_path: Path) -> None:
    spec = npm_spec(tmp_path, FIXTURE_HANG="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=process_env(spec),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    events: list[dict[str, Any]] = []
    child = None
    give_up = time.monotonic() + TIMEOUT_S
    while child is None and time.monotonic() < give_up:
        events.append(json.loads(process.stdout.readline()))
        if events[-1].get("text", "").startswith("child pid "):
            child = int(events[-1]["text"].removeprefix("child pid "))
    assert child is not None
    assert alive(child)

    process.send_signal(signal.SIGTERM)
    events += parse_events(process.stdout.read())
    process.stdout.close()

    assert process.wait(timeout=30) == 1
    assert events[-1]["error"] == "build stopped: the build was cancelled"
    assert step_events(events)[-1] == ("build", "end", False)
    assert gone(child)


def test_a_bad_spec_exits_2(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "ab" * 20, tmp_path / "storage")
    env = process_env(spec)
    env[PREFIX + "SHA"] = "main"

    result = subprocess.run(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 2
    assert "bad build spec: sha must be 40 hex characters" in result.stderr
    [end] = parse_events(result.stdout)
    assert end["type"] == "end"
    assert end["ok"] is False
    assert end["error"] == "bad build spec: sha must be 40 hex characters, not 'main'"


# --- in process, for the paths a subprocess makes awkward ---------------------------------


def static_env(tmp_path: Path, **overrides: Any) -> dict[str, str]:
    repo, sha = make_repo(tmp_path / "repo", "static")
    return make_spec(repo, sha, tmp_path / "storage", **overrides).to_env() | {
        "PATH": os.environ["PATH"]
    }


def test_main_deploys_and_restores_the_signal_handler(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    stdout = io.StringIO()

    assert entry.main(static_env(tmp_path), stdout) == 0

    assert parse_events(stdout.getvalue())[-1] == {
        "type": "end",
        "ok": True,
        "ts": parse_events(stdout.getvalue())[-1]["ts"],
    }
    assert signal.getsignal(signal.SIGTERM) == before


def test_main_with_a_failing_build_exits_1(tmp_path: Path) -> None:
    stdout = io.StringIO()

    assert entry.main(static_env(tmp_path, build_command="false"), stdout) == 1
    assert parse_events(stdout.getvalue())[-1]["error"] == "build failed: false exited with code 1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({PREFIX + "STORAGE_URL": "ftp://host/dir"}, "storage URL must be"),
        ({PREFIX + "LOG_SINK": "kafka://broker"}, "log sink must be"),
        ({PREFIX + "PROJECT_ID": ""}, "PROJECT_ID is not set"),
    ],
)
def test_main_refuses_a_bad_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    stdout = io.StringIO()

    assert entry.main(static_env(tmp_path) | change, stdout) == 2
    assert message in capsys.readouterr().err
    assert message in parse_events(stdout.getvalue())[-1]["error"]


def test_main_exits_1_when_the_log_sink_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = static_env(tmp_path, log_sink="redis://127.0.0.1:1/0")

    assert entry.main(env, io.StringIO()) == 1
    assert "cannot reach the log stream's Redis" in capsys.readouterr().err


def test_the_sigterm_handler_stops_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(Stopped):
            entry._stop(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.redis
def test_main_streams_the_log_to_redis(tmp_path: Path) -> None:
    url = redis_url()
    deployment_id = f"dpl-{uuid.uuid4().hex}"
    env = static_env(tmp_path, log_sink=url, deployment_id=deployment_id)
    stdout = io.StringIO()
    client = redis.Redis.from_url(url, decode_responses=True)
    stream = f"scalemesh:logs:{deployment_id}"
    try:
        assert entry.main(env, stdout) == 0

        entries = cast(list[tuple[str, dict[str, str]]], client.xrange(stream))
    finally:
        client.delete(stream)
        client.close()
    assert stdout.getvalue() == ""
    events = [json.loads(fields["e"]) for _, fields in entries]
    assert [entry_id for entry_id, _ in entries] == [f"0-{n}" for n in range(1, len(entries) + 1)]
    assert events[0] == {**events[0], "type": "step", "step": "clone", "status": "start"}
    assert events[-1]["type"] == "end"
    assert events[-1]["ok"] is True


@pytest.mark.redis
def test_main_exits_1_when_the_log_stream_refuses_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = redis_url()
    deployment_id = f"dpl-{uuid.uuid4().hex}"
    stream = f"scalemesh:logs:{deployment_id}"
    client = redis.Redis.from_url(url)
    client.set(stream, "not a stream")
    try:
        code = entry.main(static_env(tmp_path, log_sink=url, deployment_id=deployment_id))
    finally:
        client.delete(stream)
        client.close()

    assert code == 1
    assert "WRONGTYPE" in capsys.readouterr().err


def test_the_projects_commands_run_as_the_unprivileged_user(tmp_path: Path) -> None:
    """The builder image starts as root and hands the project's commands to another user."""
    tmp_path.chmod(0o755)
    repo, sha = make_repo(tmp_path / "repo", files={"index.html": "<h1>hi</h1>"})
    spec = make_spec(
        repo,
        sha,
        tmp_path / "storage",
        build_command="sh -c 'mkdir -p out && id -u > out/uid.txt && cp index.html out/'",
        output_directory="out",
    )
    env = process_env(spec) | {entry.RUN_AS: "65534:65534"}
    result = subprocess.run(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if os.geteuid() != 0:
        assert result.returncode == 1  # only root can hand commands to another user
        return
    assert result.returncode == 0, result.stderr
    assert (deployed(tmp_path) / "uid.txt").read_text().strip() == "65534"


@pytest.mark.parametrize("raw", ["0:0", "1000", "builder:builder", "1000:0", ":"])
def test_a_bad_run_as_is_a_bad_spec(tmp_path: Path, raw: str) -> None:
    repo, sha = make_repo(tmp_path / "repo", files={"index.html": "hi"})
    spec = make_spec(repo, sha, tmp_path / "storage")
    stdout = io.StringIO()
    assert entry.main(spec.to_env() | {entry.RUN_AS: raw}, stdout) == entry.BAD_SPEC
    assert entry.RUN_AS in stdout.getvalue()
