"""A builder dies with the process that started it: a restart leaves no build running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.runners import FAKE_BUILDER, FAKE_SANDBOX, pids
from tests.support.waiting import alive, gone, wait_until

HOST = """
import asyncio, sys
from pathlib import Path
from app.runners.local import LocalRunner
from tests.support.runners import FakeBus, make_spec

async def main() -> None:
    runner = LocalRunner(
        FakeBus(), {}, Path(sys.argv[1]), command=[sys.executable, sys.argv[2]],
        sandbox=sys.argv[3],
    )
    await runner.start(make_spec(FAKE_MODE="sleep", FAKE_PIDFILE=sys.argv[4]))
    print("started", flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def test_the_builder_dies_with_its_runner(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    args = [str(tmp_path / "builds"), str(FAKE_BUILDER), FAKE_SANDBOX, str(pidfile)]
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, *args],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None
        assert host.stdout.readline().strip() == "started"
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the pid file")
        builder, child = pids(pidfile)
        assert alive(builder)

        host.kill()  # SIGKILL: no shutdown code of the runner runs
        host.wait()

        assert gone(builder)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        if host.stdout is not None:
            host.stdout.close()
    # What the builder started in its own group is the sandbox's to end; here it is a
    # plain process, so clean it up.
    subprocess.run(["kill", "-9", str(child)], check=False)
