"""A scripted build runner and ref resolver, and the steps that drive the reconcile loop with them.

The runner does, when a test tells it to, what a builder and its runner would do (log events,
upload a manifest, end), so every path of the loop can be driven pass by pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.reconcile import Reconciler
from app.refs import RefError, ResolvedRef
from app.runners.api import RunnerError, RunState, RunStatus
from builder.spec import MANIFEST, SKIPPED, BuildSpec
from tests.support.api import Client

MAIN_SHA = "a" * 40
FEATURE_SHA = "b" * 40
TAG_SHA = "c" * 40


class FakeResolver:
    def __init__(self) -> None:
        self.refs = {
            "main": ResolvedRef(MAIN_SHA, "main", "main"),
            "feature/login": ResolvedRef(FEATURE_SHA, "feature/login", "feature/login"),
            "v1.0": ResolvedRef(TAG_SHA, None, "v1.0"),
        }

    async def resolve(self, git_url: str, ref: str) -> ResolvedRef:
        if ref not in self.refs:
            raise RefError(f"there is no branch or tag {ref!r} in {git_url}.")
        resolved = self.refs[ref]
        # Each resolve of a branch sees a new commit, as after a push.
        self.refs[ref] = ResolvedRef(
            format(int(resolved.sha, 16) + 1, "040x"), resolved.branch, resolved.ref
        )
        return resolved


@dataclass
class Build:
    spec: BuildSpec
    status: RunStatus = RunStatus.RUNNING
    reason: str | None = None
    cancelled: bool = False


@dataclass
class FakeRunner:
    """Does, when told, what a builder and its runner would do."""

    builds: dict[str, Build] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)
    fail_start: str | None = None
    poll_error: bool = False
    shared_handles: bool = True
    """Like ECS: any replica reaches its builds (a test gives each replica its own otherwise)."""

    async def start(self, spec: BuildSpec) -> str:
        if self.fail_start:
            raise RunnerError(self.fail_start)
        handle = f"fake:{next(self.counter)}"
        self.builds[handle] = Build(spec)
        return handle

    async def poll(self, handle: str) -> RunState:
        if self.poll_error:
            raise RunnerError("ECS is throttling us")
        if handle not in self.builds:
            return RunState(RunStatus.GONE, reason="interrupted by a restart")
        build = self.builds[handle]
        return RunState(build.status, reason=build.reason)

    async def cancel(self, handle: str) -> None:
        if handle in self.builds:
            self.builds[handle].cancelled = True
            self.builds[handle].status = RunStatus.FAILED

    async def aclose(self) -> None:
        return None

    def spec_of(self, deployment_id: str) -> BuildSpec:
        return self.build_of(deployment_id).spec

    def build_of(self, deployment_id: str) -> Build:
        return next(b for b in self.builds.values() if b.spec.deployment_id == deployment_id)


def tick(client: Client) -> None:
    reconciler: Reconciler = client.app.state.services.reconciler
    client.run(reconciler.tick)


def succeed(client: Client, runner: FakeRunner, deployment_id: str) -> None:
    """What a successful builder does: log, upload the files, then the manifest."""
    build = runner.build_of(deployment_id)
    services = client.app.state.services
    storage = client.app.state.services.reconciler.storage

    async def work() -> None:
        await services.bus.append(
            deployment_id, {"type": "step", "step": "build", "status": "start"}
        )
        await services.bus.append(
            deployment_id, {"type": "line", "stream": "stdout", "text": "built 3 pages"}
        )
        await storage.put(f"{build.spec.output_prefix}index.html", b"<h1>hi</h1>")
        await storage.put(f"{build.spec.output_prefix}{MANIFEST}", b'{"version": 1}')
        await services.bus.append(deployment_id, {"type": "end", "ok": True})

    client.run(work)
    build.status = RunStatus.SUCCEEDED


def skip(client: Client, runner: FakeRunner, deployment_id: str, raw: bytes) -> None:
    """What a builder that decided not to deploy does: `raw` in place of the manifest, an ok end."""
    build = runner.build_of(deployment_id)
    services = client.app.state.services
    storage = services.reconciler.storage

    async def work() -> None:
        await storage.put(f"{build.spec.output_prefix}{SKIPPED}", raw)
        await services.bus.append(deployment_id, {"type": "end", "ok": True})

    client.run(work)
    build.status = RunStatus.SUCCEEDED


def fail(client: Client, runner: FakeRunner, deployment_id: str, error: str) -> None:
    build = runner.build_of(deployment_id)
    bus = client.app.state.services.bus
    client.run(lambda: bus.append(deployment_id, {"type": "end", "ok": False, "error": error}))
    build.status = RunStatus.FAILED
