"""A build in `builder.sandbox.Bubblewrap` reaches nothing of the host: real bwrap, real processes.
Each test runs commands as an attacking build would, and checks the effect on the host."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import sandbox as sandbox_module
from builder.confine import ConfinementError
from builder.spec import BuildLimits
from tests.support.sandbox import (
    Build,
    build_dirs,
    in_sandbox_python,
    listener,
    nobody_connected,
    own_address,
    run,
    sandbox,
    sh,
    uid_processes,
)
from tests.support.waiting import wait_until

CANARY = "canary-secret-key-0f3a"
NO_CGROUP = Path("/nonexistent-cgroup-root")


@pytest.fixture
def build() -> Iterator[Build]:
    with build_dirs() as made:
        yield made


def test_a_command_reads_nothing_outside_what_it_was_given(build: Build) -> None:
    data = build.root / "data"  # a data dir next to the build's, world-readable on purpose
    data.mkdir()
    (data / "secret_key").write_text(CANARY)
    (data / "secret_key").chmod(0o644)
    with sandbox(build) as confinement:
        read = sh(confinement, build, f"cat {data}/secret_key /proc/1/root{data}/secret_key")
        top = sh(confinement, build, "ls /; ls /run")
        passwd = sh(confinement, build, "cat /etc/passwd; ls /etc")

    assert CANARY not in read.stdout + read.stderr
    assert read.stderr.count("No such file or directory") == 2
    assert set(top.stdout.split()) <= {
        "bin",
        "build",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "run",
        "sbin",
        "tmp",
        "usr",
        "scalemesh",
    }
    assert passwd.stdout.splitlines()[1] == "build:x:1000:1000:build:/tmp:/bin/sh"
    assert not {"shadow", "sudoers", "ssh", "pip.conf"} & set(passwd.stdout.split())


def test_proc_shows_the_sandboxs_own_processes_and_its_environment_alone(build: Build) -> None:
    host = subprocess.Popen(["sleep", "300"], env={"SECRET": CANARY})
    try:
        with sandbox(build) as confinement:
            launch = confinement.launch(
                in_sandbox_python(
                    "import os, json; print(json.dumps({'pids': [p for p in os.listdir('/proc') "
                    "if p.isdigit()], 'env': dict(os.environ), "
                    "'pid1': open('/proc/1/environ').read()}))"
                ),
                cwd=build.repo,
                env=build.env(),
            )
            seen = json.loads(run(launch).stdout)
    finally:
        host.kill()
        host.wait()

    assert str(host.pid) not in seen["pids"] or len(seen["pids"]) < 5
    assert len(seen["pids"]) <= 3  # bwrap's PID 1, python, and nothing of the host
    expected = {**build.env(), "HOME": "/build/home"}
    assert seen["env"] == {**expected, "PWD": "/build/repo"}  # bwrap's --chdir sets PWD
    assert dict(item.split("=", 1) for item in seen["pid1"].split("\0") if item) == expected
    assert CANARY not in json.dumps(seen)


def test_the_command_runs_as_an_unprivileged_uid_with_no_capabilities(build: Build) -> None:
    with sandbox(build) as confinement:
        done = sh(confinement, build, "id -u; grep CapEff /proc/self/status; touch made")

    assert done.stdout.split()[0] == "1000"
    assert done.stdout.split()[-1] == "0000000000000000"
    assert (build.repo / "made").stat().st_uid == build.uid  # on the host: the build's own uid


def test_it_writes_its_work_directory_and_nothing_else(build: Build) -> None:
    marker = f"scalemesh-sandbox-test-{build.uid}"
    with sandbox(build) as confinement:
        done = sh(
            confinement,
            build,
            f"echo x > /build/repo/ok; echo x > /build/home/ok; echo x > /tmp/{marker}; "
            "for p in /usr/x /etc/x /x /dev/x /run/x /run/scalemesh/x /run/egress/x; do "
            "echo x > $p 2>/dev/null && echo WROTE $p; done; true",
        )

    assert "WROTE" not in done.stdout
    assert (build.repo / "ok").exists()
    assert (build.home / "ok").exists()
    assert not (Path(tempfile.gettempdir()) / marker).exists()  # the sandbox's /tmp is its own


def test_it_reaches_no_listener_of_the_host(build: Build) -> None:
    connect = (
        "import socket, sys\n"
        "for host in sys.argv[1:]:\n"
        "    h, p = host.rsplit(':', 1)\n"
        "    try:\n"
        "        socket.create_connection((h, int(p)), timeout=5)\n"
        "        print('CONNECTED', host)\n"
        "    except OSError as e:\n"
        "        print('refused', host, e.errno)\n"
    )
    with (
        listener("127.0.0.1") as (loopback, loopback_port),
        listener(own_address()) as (own, own_port),
        sandbox(build, network=True) as confinement,
    ):
        targets = [f"127.0.0.1:{loopback_port}", f"{own_address()}:{own_port}"]
        argv = [*in_sandbox_python(connect), *targets]
        done = run(confinement.launch(argv, cwd=build.repo, env=build.env()))

        assert "CONNECTED" not in done.stdout
        assert done.stdout.count("refused") == 2
        assert nobody_connected(loopback)
        assert nobody_connected(own)


def test_the_egress_proxy_refuses_the_host_and_says_so_in_the_log(build: Build) -> None:
    with listener("127.0.0.1") as (loopback, port), sandbox(build, network=True) as confinement:
        done = sh(
            confinement,
            build,
            f"curl -sS --noproxy '' https://127.0.0.1:{port}/; curl -sS --noproxy '' "
            f"https://127.0.0.1/; curl -sS https://169.254.169.254/; "
            f"curl -sS https://{own_address()}/",
        )
        assert nobody_connected(loopback)

    assert done.stderr.count("CONNECT tunnel failed, response 403") == 4
    assert build.lines[-4:] == [
        f"Blocked a connection to 127.0.0.1:{port}: port not allowed",
        "Blocked a connection to 127.0.0.1:443: loopback",
        "Blocked a connection to 169.254.169.254:443: cloud metadata address",
        f"Blocked a connection to {own_address()}:443: private address",
    ]


@pytest.mark.timeout(240)
def test_npm_installs_a_real_package_through_the_egress_proxy(build: Build) -> None:
    (build.repo / "package.json").write_text('{"name": "site", "version": "1.0.0"}')
    with sandbox(build, network=True) as confinement:
        view = run(
            confinement.launch(
                ["npm", "view", "is-number", "version"], cwd=build.repo, env=build.env()
            )
        )
        install = run(
            confinement.launch(
                ["npm", "install", "--no-audit", "--no-fund", "is-number@7.0.0"],
                cwd=build.repo,
                env=build.env(),
            )
        )

    assert view.returncode == 0, view.stderr
    assert install.returncode == 0, install.stderr
    installed = json.loads((build.repo / "node_modules/is-number/package.json").read_text())
    assert installed["version"] == "7.0.0"
    assert (build.home / ".npm").is_dir()  # npm's cache went to the build's home


def test_a_setsid_double_forked_child_ends_with_its_command(build: Build) -> None:
    with sandbox(build) as confinement:
        done = sh(confinement, build, "(setsid sleep 300 &) ; (nohup sleep 300 &) ; echo left")
        assert done.stdout.strip() == "left"
        # bwrap returns as its PID 1 starts to exit; the namespace's end takes its processes.
        wait_until(lambda: uid_processes(build.uid) == set(), what="the namespace emptied")


def test_stop_all_kills_every_process_of_a_running_build(build: Build) -> None:
    with sandbox(build) as confinement:
        launch = confinement.launch(
            ["sh", "-c", "(setsid sleep 300 &); sleep 300 & echo ready; wait"],
            cwd=build.repo,
            env=build.env(),
        )
        with subprocess.Popen(
            launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            **launch.popen,
        ) as process:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"

            confinement.stop_all()

            assert process.wait(timeout=30) != 0
            assert uid_processes(build.uid) == set()


def test_the_sandbox_dies_with_its_parent(build: Build) -> None:
    with sandbox(build) as confinement:
        launch = confinement.launch(["sleep", "300"], cwd=build.repo, env=build.env())
        # A stand-in for the builder, as the build's uid, killed while its sandbox runs.
        stand_in = (
            "import subprocess, sys\n"
            "subprocess.Popen(sys.argv[2:], pass_fds=(int(sys.argv[1]),))\n"
            "print('started', flush=True)\n"
            "input()\n"
        )
        (info_fd,) = launch.popen["pass_fds"]
        parent = subprocess.Popen(
            ["/usr/bin/python3", "-c", stand_in, str(info_fd), *launch.argv],
            env=launch.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            user=build.uid,
            group=build.uid,
            extra_groups=[],
            pass_fds=(info_fd,),
        )
        assert parent.stdout is not None
        assert parent.stdout.readline() == "started\n"
        wait_until(lambda: len(uid_processes(build.uid)) >= 4, what="the sandbox running")

        parent.send_signal(signal.SIGKILL)
        parent.wait()
        parent.stdin.close()  # type: ignore[union-attr]
        parent.stdout.close()

        wait_until(lambda: uid_processes(build.uid) == set(), what="the sandbox gone")


FORK_BOMB = (
    "import os, time\n"
    "n = 0\n"
    "try:\n"
    "    while True:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(300)\n"
    "            os._exit(0)\n"
    "        n += 1\n"
    "except OSError as e:\n"
    "    print(n, e.errno)\n"
)


@pytest.mark.parametrize(
    ("cgroup_root", "mechanism"), [(Path("/sys/fs/cgroup"), "cgroup v1"), (NO_CGROUP, "rlimit")]
)
def test_a_fork_bomb_stops_at_the_process_limit(
    build: Build, cgroup_root: Path, mechanism: str
) -> None:
    limits = BuildLimits(processes=40)
    with sandbox(build, limits, cgroup_root=cgroup_root) as confinement:
        launch = confinement.launch(in_sandbox_python(FORK_BOMB), cwd=build.repo, env=build.env())
        forked, error = map(int, run(launch).stdout.split())
        assert mechanism in confinement.description

    assert error == errno.EAGAIN
    assert 10 < forked < 40
    wait_until(lambda: uid_processes(build.uid) == set(), what="the forked processes gone")


@pytest.mark.parametrize(
    ("cgroup_root", "effect"), [(Path("/sys/fs/cgroup"), "killed"), (NO_CGROUP, "MemoryError")]
)
def test_memory_over_the_limit_is_refused(build: Build, cgroup_root: Path, effect: str) -> None:
    limits = BuildLimits(memory_mb=128)
    grab = "data = bytearray(256 << 20); print('GOT', len(data))"
    with sandbox(build, limits, cgroup_root=cgroup_root) as confinement:
        done = run(confinement.launch(in_sandbox_python(grab), cwd=build.repo, env=build.env()))

    assert "GOT" not in done.stdout
    if effect == "killed":
        assert done.returncode == 128 + signal.SIGKILL
    else:
        assert "MemoryError" in done.stderr


def test_the_log_says_how_each_limit_is_enforced(build: Build) -> None:
    with sandbox(build, network=True) as confinement:
        assert "memory and processes limited by cgroup v1" in confinement.description
        assert "network only through the egress proxy (ports 80, 443" in confinement.description
    with sandbox(build, cgroup_root=NO_CGROUP) as confinement:
        assert "memory limited by rlimit" in confinement.description
        assert "no network" in confinement.description
    assert build.lines[0].startswith("No cgroup for this build (no cgroup v1 memory hierarchy")


def test_read_only_paths_are_shown_and_not_writable(build: Build) -> None:
    tools = build.root / "tools"
    tools.mkdir()
    (tools / "tool").write_text("a tool")
    with sandbox(build, readonly_paths=[tools]) as confinement:
        done = sh(confinement, build, f"cat {tools}/tool; echo x > {tools}/tool || echo; ls /")

    assert done.stdout.startswith("a tool\n")
    assert "Read-only file system" in done.stderr
    assert (tools / "tool").read_text() == "a tool"


def test_paths_in_the_work_directory_are_translated(build: Build) -> None:
    (build.repo / "bin").mkdir()
    with sandbox(build) as confinement:
        env = build.env(PATH=f"{build.repo}/bin:relative:/root/.cargo/bin:/usr/bin")
        launch = confinement.launch(
            ["sh", "-c", "pwd; echo $PATH"], cwd=build.repo / "bin", env=env
        )
        done = run(launch)

    assert done.stdout.split() == ["/build/repo/bin", "/build/repo/bin:relative:/usr/bin"]
    assert launch.cwd == Path("/")
    with sandbox(build) as confinement:  # the host's own tools (not in the sandbox) leave PATH
        bare = confinement.launch(["true"], cwd=build.repo, env=build.env(PATH="/root/bin"))
    assert bare.env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


def test_hand_over_gives_the_build_its_files_and_follows_no_symlink(build: Build) -> None:
    (build.repo / "file").write_text("x")
    (build.repo / "passwd").symlink_to("/etc/passwd")
    with sandbox(build):
        assert (build.repo / "file").stat().st_uid == build.uid
        assert (build.repo / "passwd").lstat().st_uid == build.uid
        assert Path("/etc/passwd").stat().st_uid == 0


def test_a_launch_outside_the_given_directories_is_refused(build: Build) -> None:
    with sandbox(build) as confinement:
        with pytest.raises(ConfinementError, match="not in a directory given to the build"):
            confinement.launch(["true"], cwd=build.root, env=build.env())
        build.home.rmdir()
        with pytest.raises(ConfinementError, match="is not a directory"):
            confinement.launch(["true"], cwd=build.repo, env=build.env())
        build.home.mkdir(mode=0o700)
        build.root.chmod(0o700)
        with pytest.raises(ConfinementError, match=f"uid {build.uid} cannot reach"):
            confinement.launch(["true"], cwd=build.repo, env=build.env())
        confinement.close()
        with pytest.raises(ConfinementError, match="closed"):
            confinement.launch(["true"], cwd=build.repo, env=build.env())


def test_stop_all_also_kills_what_runs_as_the_build_or_in_its_cgroup(build: Build) -> None:
    with sandbox(build) as confinement:
        as_build = subprocess.Popen(["sleep", "300"], user=build.uid, group=build.uid)
        in_cgroup = subprocess.Popen(["sleep", "300"])  # root's, moved into the build's cgroup
        for directory in confinement._cgroup.directories:  # type: ignore[union-attr]
            (directory / "cgroup.procs").write_text(str(in_cgroup.pid))

        confinement.stop_all()

        assert as_build.wait(timeout=30) == -signal.SIGKILL
        assert in_cgroup.wait(timeout=30) == -signal.SIGKILL


def test_stop_all_says_so_when_a_process_survives(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process SIGKILL cannot end (stuck in the kernel): a kill that does nothing stands in.
    monkeypatch.setattr(sandbox_module, "kill_checked", lambda pid, ours: None)
    monkeypatch.setattr(sandbox_module, "KILL_ROUNDS", 2)
    with (
        sandbox(build, cgroup_root=NO_CGROUP) as confinement,
        subprocess.Popen(["sleep", "300"], user=build.uid, group=build.uid) as stuck,
    ):
        with pytest.raises(ConfinementError, match=f"survived SIGKILL: \\[{stuck.pid}\\]"):
            confinement.stop_all()
        stuck.kill()
