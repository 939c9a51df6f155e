"""Ports for test servers, handed over so that nothing else can take them in between.

Closing a probe socket and then telling a server its port (the usual `free_port()`) leaves a
window in which another process, a parallel xdist worker say, can bind that port. Instead:

- a server in this process gets a socket already bound (`bound_socket`), and listens on it;
- a subprocess that must be told its port before it starts (`scalemesh dev` builds URLs from
  it) gets a port held in TIME_WAIT (`reserved_port`): the kernel hands such a port to no
  `bind(port 0)` nor outgoing connection, while a server binding it explicitly with
  SO_REUSEADDR (uvicorn, granian) gets it;
- a client test that needs "nothing listens here" gets a port bound without listening
  (`refused_port`): connections are refused, and nobody else can bind it meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"


def bound_socket(host: str = LOOPBACK) -> socket.socket:
    """A TCP socket bound to a port the system picked; hand it to the server, which listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def reserved_port(host: str = LOOPBACK) -> int:
    """A port for a subprocess to bind explicitly (with SO_REUSEADDR), held until it does.

    One connection is made to a listener on the port and closed from the listener's side
    first, which leaves that side in TIME_WAIT (a minute on Linux). Until then the kernel
    never picks the port for anyone asking for port 0 or connecting out.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = port_of(listener)
        with socket.create_connection((host, port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the accepted side closes first: it is the one in TIME_WAIT
            client.recv(1)  # wait for its FIN, so the close has happened before we return
    return port


@contextlib.contextmanager
def refused_port(host: str = LOOPBACK) -> Iterator[int]:
    """A port where connections are refused for as long as the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))  # bound, never listening: a connect gets RST, a bind gets EADDRINUSE
        yield port_of(sock)
