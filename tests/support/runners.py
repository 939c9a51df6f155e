"""The runner tests' doubles: a log bus that records, a build spec, an unreachable ECS client."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

from app.runners.api import RunState, RunStatus
from app.runners.local import LocalRunner
from builder.events import LogEvent
from builder.spec import BuildSpec
from tests.support.waiting import eventually_async

FAKE_BUILDER = Path(__file__).parent.parent / "fixtures" / "fake_builder.py"
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghs_clonetoken123"
FAKE_SANDBOX = '{"kind": "fake"}'
"""What the runner tells the fake builder about its sandbox (the fake ignores it)."""


class FakeBus:
    """Just enough of a `LogBus` to see what the runner appended."""

    def __init__(self, *, fail: bool = False) -> None:
        self.events: dict[str, list[LogEvent]] = {}
        self.fail = fail

    async def append(self, deployment_id: str, event: LogEvent) -> int:
        if self.fail:
            raise ConnectionError("bus unreachable")
        log = self.events.setdefault(deployment_id, [])
        log.append({**event, "seq": len(log) + 1})
        return len(log)

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        return [event for event in self.events.get(deployment_id, []) if event["seq"] > since]

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        for event in await self.read(deployment_id, since):
            yield event

    async def forget(self, deployment_id: str) -> None:
        self.events.pop(deployment_id, None)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def texts(self, deployment_id: str, stream: str) -> list[str]:
        return [
            str(event["text"])
            for event in self.events.get(deployment_id, [])
            if event.get("stream") == stream
        ]


def make_spec(deployment_id: str = "dep-1", **env: str) -> BuildSpec:
    return BuildSpec(
        deployment_id=deployment_id,
        project_id=7,
        git_url="https://github.com/octo/site.git",
        sha=SHA,
        storage_url="s3://bucket/prefix",
        git_ref="main",
        token=TOKEN,
        env=env,
    )


async def finished(runner: LocalRunner, handle: str) -> RunState:
    """The build's state once it is no longer running."""

    async def ended() -> RunState | None:
        state = await runner.poll(handle)
        return None if state.status is RunStatus.RUNNING else state

    return await eventually_async(ended, interval=0.02, what="the build ending")


def leftovers(work_root: Path) -> list[Path]:
    """What the runner left in its work root (a quick listing: fine inside a test)."""
    return list(work_root.iterdir())


def pids(path: Path) -> list[int]:
    return [int(pid) for pid in path.read_text().split()]
