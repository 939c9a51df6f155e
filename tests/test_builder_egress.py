"""The egress proxy lets a build reach public hosts on allowed ports, and nothing else.

The address policy is checked on its own (no network); the proxy is asked through its real
unix socket, with a resolver of the test's when a name must point somewhere on purpose; the
relay runs in this process or as the sandbox runs it, and reaches a real registry.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import egress, egress_relay
from builder.egress import EgressProxy, local_refusal, refusal
from tests.support.ports import reserved_port
from tests.support.sandbox import REGISTRY, gateway_networks, own_address

FAKE_NAMES = {
    "private.test": ["10.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["10.1.1.1", "127.0.0.1"],
    "nothing.test": [],
}


def fake_resolver(host: str, port: int) -> list[str]:
    if host == "broken.test":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return FAKE_NAMES.get(host, [host]) if host.endswith(".test") else egress.resolve(host, port)


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def proxy(lines: list[str]) -> Iterator[EgressProxy]:
    with EgressProxy(
        on_block=lines.append, resolver=fake_resolver, allowed_networks=gateway_networks()
    ) as made:
        yield made


def connect(proxy: EgressProxy) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(60)
    client.connect(str(proxy.socket_path))
    return client


def ask(proxy: EgressProxy, request: bytes) -> bytes:
    """Send `request`; everything the proxy answers until it closes."""
    with connect(proxy) as client:
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def send_forever(client: socket.socket) -> None:
    while True:
        client.sendall(b"x" * 65536)


def established(client: socket.socket) -> bool:
    expected = b"HTTP/1.1 200 Connection established\r\n\r\n"
    got = b""
    while len(got) < len(expected) and (chunk := client.recv(len(expected) - len(got))):
        got += chunk
    return got == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("169.254.169.254", "cloud metadata address"),
        ("169.254.1.1", "link-local address"),
        ("100.64.1.1", "shared address space (CGNAT)"),
        ("224.0.0.1", "multicast address"),
        ("0.0.0.0", "unspecified address"),  # noqa: S104 - an address checked, not bound
        ("240.0.0.1", "private address"),
        ("::", "unspecified address"),
        ("::1", "loopback"),
        ("fe80::1", "link-local address"),
        ("fc00::1", "private address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("fec0::1", "site-local address"),
        ("ff02::1", "multicast address"),
        ("::ffff:127.0.0.1", "loopback (inside an IPv6 address)"),
        ("::ffff:10.0.0.1", "private address (inside an IPv6 address)"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata address (inside an IPv6 address)"),
        ("2002:7f00:1::1", "loopback (inside an IPv6 address)"),
        ("2001:db8::1", "private address"),
        ("8.8.8.8", None),
        ("104.16.0.1", None),
        ("2606:4700::1111", None),
        ("2002:808:808::1", None),
    ],
)
def test_only_public_addresses_are_allowed(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


def test_this_machines_own_addresses_are_refused_whatever_their_range() -> None:
    mine = "an address of this machine"
    assert local_refusal(ipaddress.ip_address(own_address())) == mine
    assert local_refusal(ipaddress.ip_address("127.0.0.1")) == mine
    assert local_refusal(ipaddress.ip_address("8.8.8.8")) is None
    # No route at all (a broadcast address): the connection itself fails, not the policy.
    assert local_refusal(ipaddress.ip_address("255.255.255.255")) is None


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("127.0.0.1:443", "loopback"),
        ("2130706433:443", "loopback (127.0.0.1)"),  # a name to us, 127.0.0.1 to the resolver
        ("[::1]:443", "loopback"),
        ("[::ffff:127.0.0.1]:443", "loopback (inside an IPv6 address)"),
        ("private.test:443", "private address (10.0.0.1)"),
        ("metadata.test:80", "cloud metadata address (169.254.169.254)"),
        ("mixed.test:443", "private address (10.1.1.1); loopback (127.0.0.1)"),
        (f"{REGISTRY}:22", "port not allowed"),
    ],
)
def test_a_refused_connect_answers_403_and_is_logged(
    proxy: EgressProxy, lines: list[str], target: str, reason: str
) -> None:
    answer = ask(proxy, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())

    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert answer.endswith(f"\r\n\r\n{reason}\n".encode())
    assert lines == [f"Blocked a connection to {target}: {reason}"]


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (b"GET http://example.com/ HTTP/1.1\r\n\r\n", b"405 Method Not Allowed"),
        (b"CONNECT example.com HTTP/1.1\r\n\r\n", b"400 Bad Request"),
        (b"CONNECT example.com:0 HTTP/1.1\r\n\r\n", b"400 Bad Request"),
        (b"CONNECT exa$mple.com:443 HTTP/1.1\r\n\r\n", b"400 Bad Request"),
        (b"CONNECT broken.test:443 HTTP/1.1\r\n\r\n", b"502 Bad Gateway"),
        (b"CONNECT nothing.test:443 HTTP/1.1\r\n\r\n", b"502 Bad Gateway"),
        (b"CONNECT " + b"x" * 9000 + b"\r\n\r\n", b"431 Request Header Fields Too Large"),
        (b"CONNECT " + b"x" * 90000, b"431 Request Header Fields Too Large"),
    ],
)
def test_what_is_not_a_good_connect_gets_an_error_and_no_log_line(
    proxy: EgressProxy, lines: list[str], sent: bytes, status: bytes
) -> None:
    assert ask(proxy, sent).startswith(b"HTTP/1.1 " + status)
    assert lines == []


def test_an_unreachable_allowed_address_gets_502(lines: list[str]) -> None:
    allowed = [ipaddress.ip_network("192.0.2.0/24")]  # TEST-NET-1, allowed on purpose
    with EgressProxy(on_block=lines.append, allowed_networks=allowed, connect_timeout=0.5) as p:
        answer = ask(p, b"CONNECT 192.0.2.254:443 HTTP/1.1\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway")
    assert b"cannot connect to 192.0.2.254:443" in answer


def test_an_allowed_network_never_opens_this_machine(lines: list[str]) -> None:
    mine = own_address()
    allowed = [ipaddress.ip_network(f"{mine}/32")]
    with EgressProxy(on_block=lines.append, allowed_networks=allowed) as p:
        assert ask(p, f"CONNECT {mine}:443 HTTP/1.1\r\n\r\n".encode()).endswith(
            b"an address of this machine\n"
        )


def test_a_public_host_is_reached_through_the_tunnel(proxy: EgressProxy) -> None:
    head = f"CONNECT {REGISTRY}:80 HTTP/1.1\r\n\r\n".encode()
    early = f"HEAD /is-number HTTP/1.1\r\nHost: {REGISTRY}\r\nConnection: close\r\n\r\n"
    answer = ask(proxy, head + early.encode())  # sent before the 200: passed on after it

    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 ")


def test_slow_heads_and_excess_connections_are_cut(lines: list[str]) -> None:
    with (
        EgressProxy(on_block=lines.append, head_timeout=0.3, max_connections=1) as p,
        connect(p) as slow,
    ):
        slow.sendall(b"CONNECT ")
        assert ask(p, b"CONNECT a.test:443 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503")
        assert slow.recv(100).startswith(b"HTTP/1.1 408 Request Timeout")


def test_an_idle_tunnel_is_closed(lines: list[str]) -> None:
    allowed = gateway_networks()
    with (
        EgressProxy(on_block=lines.append, allowed_networks=allowed, idle_timeout=0.3) as p,
        connect(p) as idle,
    ):
        idle.sendall(f"CONNECT {REGISTRY}:443 HTTP/1.1\r\n\r\n".encode())
        assert established(idle)
        assert idle.recv(100) == b""  # nothing moved either way: the proxy closed it


def test_closing_the_proxy_ends_its_tunnels_and_removes_its_socket(lines: list[str]) -> None:
    with EgressProxy(on_block=lines.append, allowed_networks=gateway_networks()) as p:
        quiet = connect(p)  # goes away without a word: the proxy carries on
        quiet.close()
        with connect(p) as tunnel:
            tunnel.sendall(f"CONNECT {REGISTRY}:443 HTTP/1.1\r\n\r\n".encode())
            assert established(tunnel)
            p.close()
            assert tunnel.recv(100) == b""
    assert not p.directory.exists()


def test_only_the_sandboxs_uid_may_use_the_socket() -> None:
    with EgressProxy(on_block=print, client_uid=54321) as p:
        socket_info, directory_info = p.socket_path.stat(), p.directory.stat()
    assert (socket_info.st_uid, stat.S_IMODE(socket_info.st_mode)) == (54321, 0o600)
    assert (directory_info.st_uid, stat.S_IMODE(directory_info.st_mode)) == (0, 0o711)


def test_a_refused_client_that_keeps_sending_is_cut_off(
    proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress, "LINGER_READS", 2)
    with connect(proxy) as client:
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        with pytest.raises(OSError, match=r"Broken pipe|Connection reset"):
            send_forever(client)  # the proxy reads a little of it, then closes: sending fails


def test_past_a_hundred_refusals_the_log_says_the_rest_are_not_logged(
    proxy: EgressProxy, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress, "MAX_REPORTS", 2)
    for _ in range(4):
        ask(proxy, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n")

    assert lines == [
        "Blocked a connection to 127.0.0.1:443: loopback",
        "Blocked a connection to 127.0.0.1:443: loopback",
        "Further blocked connections are not logged",
    ]


@pytest.fixture
def echo_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that echoes what it gets, then ends its side."""
    path = tmp_path / "echo"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    yield path
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join()


def test_the_relay_carries_each_connection_to_the_socket(echo_socket: Path) -> None:
    listener = egress_relay.listen(0)
    thread = threading.Thread(target=egress_relay.serve, args=(listener, str(echo_socket)))
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=30) as client:
            client.sendall(b"hello")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"hello"
            assert client.recv(100) == b""
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join()


def test_a_relay_to_a_missing_socket_closes_the_connection() -> None:
    listener = egress_relay.listen(0)
    thread = threading.Thread(target=egress_relay.serve, args=(listener, "/nonexistent/sock"))
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=30) as client:
            assert client.recv(100) == b""
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join()


def test_the_relay_runs_the_command_and_passes_its_exit_code_on() -> None:
    assert egress_relay.run(["sh", "-c", "exit 7"]) == 7
    assert egress_relay.run(["sh", "-c", "kill -KILL $$"]) == 128 + signal.SIGKILL
    assert egress_relay.run(["/nonexistent/command"]) == egress_relay.NOT_RUN


def test_a_signal_before_the_command_started_reaches_it_once_it_has() -> None:
    forward = egress_relay.Forwarder()
    forward(signal.SIGTERM)
    with subprocess.Popen(["sleep", "300"]) as child:
        forward.started(child.pid)
        assert child.wait(timeout=30) == -signal.SIGTERM
    forward = egress_relay.Forwarder()
    # SIGHUP, not SIGINT: a test worker may ignore SIGINT, and its children inherit that.
    child = subprocess.Popen(["sleep", "300"])
    try:
        forward.started(child.pid)
        forward(signal.SIGHUP)  # once it runs, a signal goes straight on
        assert child.wait(timeout=30) == -signal.SIGHUP
    finally:
        child.kill()
        child.wait()
    assert egress_relay.main(["--", "true"]) == 0  # no socket, no process limit: just run it


@pytest.mark.parametrize(
    "argv", [["true"], ["--port", "--", "true"], ["--user", "x", "--", "true"], ["--"]]
)
def test_the_relay_refuses_arguments_it_does_not_know(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="usage"):
        egress_relay.main(argv)


def test_the_relay_as_the_sandbox_runs_it(echo_socket: Path) -> None:
    port = reserved_port()
    client = (
        "import resource, socket, sys\n"
        f"c = socket.create_connection(('127.0.0.1', {port}))\n"
        "c.sendall(b'through'); c.shutdown(socket.SHUT_WR)\n"
        "print(c.recv(100).decode(), resource.getrlimit(resource.RLIMIT_NPROC)[0])\n"
    )
    relay = [sys.executable, "-m", "builder.egress_relay", "--socket", str(echo_socket)]
    done = subprocess.run(
        [*relay, "--port", str(port), "--nproc", "77", "--", sys.executable, "-c", client],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )

    assert done.stdout.split() == ["through", "77"], done.stderr

    forwarded = "trap 'exit 42' TERM; kill -TERM $PPID; while :; do sleep 0.01; done"
    relayed = subprocess.run(
        [*relay, "--port", str(reserved_port()), "--", "sh", "-c", forwarded],
        timeout=60,
        check=False,
    )
    assert relayed.returncode == 42  # the relay got TERM, and passed it on
