"""A build's only way out: an HTTP CONNECT proxy on a unix socket, to public hosts only.

The sandbox has no network of its own. Its relay (`builder.egress_relay`) hands every connection
to this proxy, which runs outside the sandbox and:

- answers `CONNECT host:port` only, and only for the allowed ports (443 and 80 by default);
  plain `GET http://...` proxy requests get 405: the package registries are all HTTPS;
- resolves the name itself and checks every address before connecting to that very address
  (no second lookup, so no DNS-rebinding gap): loopback, private, link-local (the cloud
  metadata address among them), shared (CGNAT), multicast, reserved, unspecified, IPv6 unique
  local and site-local addresses, IPv4 inside IPv6 forms of those, and this machine's own
  addresses, whatever range they are in, are refused;
- answers each refusal with `403` and a short reason, and reports it (`on_block`);
- bounds what a build can hold: the request head (size and time), connections at once, the
  time to connect, and idle tunnels.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""(host, port) → the addresses to try, as text, in order."""

DEFAULT_PORTS = (443, 80)
SOCKET_NAME = "sock"
HEAD_LIMIT = 8 * 1024
"""Bytes of request head; more is refused (a CONNECT head is a line or two)."""
HEAD_TIMEOUT = 10.0
"""Seconds for the whole request head to arrive."""
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0
"""Seconds a tunnel may carry nothing either way before it is closed."""
MAX_CONNECTIONS = 64
MAX_REPORTS = 100
"""Refusals reported one by one; after that one line says the rest are not."""
LINGER_READS = 4
"""Reads of what a refused client still sends, before its connection is closed anyway."""
_CHUNK = 64 * 1024
_LINGER = 1.0
_SWEEP = 0.05
_HOST = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_-]+)*\.?$"
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
}


def refusal(address: Address) -> str | None:
    """Why the build may not connect to `address`; None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (inner := refusal(embedded)):
            return f"{inner} (inside an IPv6 address)"
    checks: list[tuple[bool, str]] = [
        (address in _METADATA, "cloud metadata address"),
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local address"),
        (address.is_multicast, "multicast address"),
        (address in _CGNAT, "shared address space (CGNAT)"),
        (address.is_private, "private address"),
        (address.is_reserved, "reserved address"),
        (
            isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
            "site-local address",
        ),
        (not address.is_global, "not a public address"),
    ]
    return next((reason for refused, reason in checks if refused), None)


def local_refusal(address: Address) -> str | None:
    """ "an address of this machine" when connecting to `address` would stay on this machine.

    A public address assigned to one of this machine's interfaces reaches the host's own
    services just like loopback. The kernel's routing answers it: a UDP socket "connected" to
    such an address (nothing is sent) gets that same address as its source.
    """
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(address), 9))
        except OSError:
            return None  # no route: the connection itself will fail
        source = ipaddress.ip_address(probe.getsockname()[0])
    return "an address of this machine" if source == address else None


def resolve(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host`, in its order, each once."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class Refused(Exception):
    """An answer other than 200 for one request; `report`: the line for the build log, if any."""

    def __init__(self, status: int, reason: str, *, report: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.report = status, reason, report


class EgressProxy:
    """The proxy of one build: a unix socket in a directory of its own, served by threads.

    `client_uid`: the host uid the sandbox runs as, the only one (with root) that may connect.
    `on_block` is called from the proxy's threads, one call at a time. `allowed_networks`:
    addresses allowed although not public (a registry mirror on a private address, or a
    network whose registries are reached through a gateway); never this machine's own.
    """

    def __init__(
        self,
        *,
        on_block: Callable[[str], None],
        ports: Iterable[int] = DEFAULT_PORTS,
        allowed_networks: Iterable[Network] = (),
        client_uid: int | None = None,
        resolver: Resolver = resolve,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.ports = frozenset(ports)
        self.allowed_networks = tuple(allowed_networks)
        self._on_block = on_block
        self._resolver = resolver
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._head_timeout = head_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._report_lock = threading.Lock()
        self._reports = 0
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False
        # Made 0700, opened up only once the socket is there with its final owner and mode.
        self.directory = Path(tempfile.mkdtemp(prefix="scalemesh-egress-"))
        self.socket_path = self.directory / SOCKET_NAME
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        if client_uid is not None:
            os.chown(self.socket_path, client_uid, client_uid)
        self._listener.listen(MAX_CONNECTIONS)
        # Searchable, not listable: the sandbox's uid must reach the socket, which it alone owns.
        os.chmod(self.directory, 0o711)  # noqa: S103
        self._accepting = threading.Thread(target=self._accept, name="egress", daemon=True)
        self._accepting.start()

    def __enter__(self) -> EgressProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening, end every tunnel, and remove the socket and its directory."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._accepting.join()
        self._listener.close()
        for thread in self._threads:
            # Again and again: a thread may open its upstream just after a sweep.
            while thread.is_alive():
                with self._open_lock:
                    for sock in self._open:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                thread.join(_SWEEP)
        self.socket_path.unlink(missing_ok=True)
        self.directory.rmdir()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                _answer(client, Refused(503, "too many connections at once"))
                client.close()
                continue
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [known for known in self._threads if known.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        try:
            head, early = _read_head(client, self._head_timeout)
            host, port = _target(head)
            upstream = self._upstream(host, port)
            self._track(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                upstream.sendall(early)
            _tunnel(client, upstream, self._idle_timeout)
        except Refused as refused:
            if refused.report:
                self._report(refused.report)
            _answer(client, refused)
        except OSError:
            pass  # the build's side went away, or close() ended the tunnel
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._untrack(sock)
                    sock.close()
            self._slots.release()

    def _upstream(self, host: str, port: int) -> socket.socket:
        """A connection to the first allowed address of `host`, checked before it is made."""
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if port not in self.ports:
            reason = "port not allowed"
            raise Refused(403, reason, report=f"Blocked a connection to {shown}: {reason}")
        try:
            addresses = [ipaddress.ip_address(text) for text in self._resolver(host, port)]
        except (OSError, ValueError) as exc:
            raise Refused(502, f"cannot resolve {host}: {exc}") from None
        refused: list[str] = []
        failed = ""
        named = not _is_address(host)
        for address in addresses:
            allowed = any(address in network for network in self.allowed_networks)
            why = (None if allowed else refusal(address)) or local_refusal(address)
            if why:
                refused.append(f"{why} ({address})" if named else why)
                continue
            try:
                return socket.create_connection((str(address), port), self._connect_timeout)
            except OSError as exc:
                failed = f"cannot connect to {shown}: {exc.strerror or exc}"
        if failed or not refused:
            raise Refused(502, failed or f"{host} has no address")
        reason = "; ".join(refused)
        raise Refused(403, reason, report=f"Blocked a connection to {shown}: {reason}")

    def _report(self, text: str) -> None:
        with self._report_lock:
            self._reports += 1
            if self._reports <= MAX_REPORTS:
                self._on_block(text)
            elif self._reports == MAX_REPORTS + 1:
                self._on_block("Further blocked connections are not logged")

    def _track(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)


def _read_head(client: socket.socket, timeout: float) -> tuple[bytes, bytes]:
    """The request head, and whatever the client sent after it (a TLS hello, say)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > HEAD_LIMIT:
            raise Refused(431, "request head too large")
        # Past the deadline, a recv waits a millisecond: the head can still only grow to
        # HEAD_LIMIT, so a client trickling bytes holds the thread no longer than that.
        client.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = client.recv(_CHUNK)
        except TimeoutError:
            raise Refused(408, "request head too slow") from None
        if not chunk:
            raise OSError("the client closed the connection")
        data += chunk
    head, _, early = data.partition(b"\r\n\r\n")
    if len(head) > HEAD_LIMIT:
        raise Refused(431, "request head too large")
    return head, early


def _target(head: bytes) -> tuple[str, int]:
    """The (host, port) of a `CONNECT host:port HTTP/1.x` request."""
    method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    if method != "CONNECT":
        raise Refused(405, "only CONNECT is supported (use https)")
    authority = rest.partition(" ")[0]
    host, _, port_text = authority.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not _valid_host(host):
        raise Refused(400, f"bad CONNECT target {authority[:100]!r}")
    return host, int(port_text)


def _valid_host(host: str) -> bool:
    return _is_address(host) or bool(_HOST.match(host))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _tunnel(client: socket.socket, upstream: socket.socket, idle: float) -> None:
    """Carry bytes both ways until both sides have ended, or nothing moves for `idle` s."""
    ends = {client: upstream, upstream: client}
    sockets = {sock.fileno(): sock for sock in ends}
    for sock in ends:
        sock.settimeout(idle)  # bounds a send to a side that stopped reading
    with selectors.DefaultSelector() as selector:
        for sock in ends:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map():
            ready = selector.select(idle)
            if not ready:
                return
            for key, _ in ready:
                source = sockets[key.fd]
                data = source.recv(_CHUNK)
                if data:
                    ends[source].sendall(data)
                else:
                    selector.unregister(source)
                    with contextlib.suppress(OSError):
                        ends[source].shutdown(socket.SHUT_WR)


def _answer(client: socket.socket, refused: Refused) -> None:
    body = f"{refused.reason}\n".encode()
    head = (
        f"HTTP/1.1 {refused.status} {_PHRASES[refused.status]}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        client.settimeout(HEAD_TIMEOUT)
        client.sendall(head.encode() + body)
        # Closing with unread bytes would reset the connection, and the answer with it: end
        # our side, then read a little of theirs (bounded) before closing.
        client.shutdown(socket.SHUT_WR)
        client.settimeout(_LINGER)
        for _ in range(LINGER_READS):
            if not client.recv(_CHUNK):
                break


_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
