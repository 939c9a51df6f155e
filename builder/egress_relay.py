"""Inside the sandbox: relay 127.0.0.1:<port> to the egress proxy's socket, and run the command.

`builder.sandbox` runs this file with the host's Python as
`python -I -S relay.py [--socket PATH --port N] [--nproc N] -- command...`. It listens on the
sandbox's own loopback (the sandbox has no other network), relays every connection to the
egress proxy's unix socket, starts the command as its child and exits with its exit code.
`--nproc` sets the process limit from inside the sandbox's user namespace, where it counts the
sandbox's processes alone (set outside, it would count every process of the host uid).

Standard library only, and nothing of the `builder` package: it runs where only this file
and the interpreter are mounted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

CHUNK = 64 * 1024
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
"""Passed on to the command, which decides what they mean; the relay itself ends with it."""
NOT_RUN = 127
"""The shell's code for a command that could not be started."""
USAGE = "usage: relay.py [--socket PATH --port N] [--nproc N] -- command..."


def main(argv: Sequence[str] | None = None) -> int:
    # No argparse, no subprocess: each costs milliseconds of every sandboxed command.
    options, command = _parse(sys.argv[1:] if argv is None else argv)
    if "--socket" in options:
        listener = listen(int(options.get("--port", "0")))
        # The relaying threads (and the threads they start) never take the signals to pass
        # on: one of them would, while the main thread waits for the command unawares.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        thread = threading.Thread(target=serve, args=(listener, options["--socket"]), daemon=True)
        thread.start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    if "--nproc" in options:
        import resource  # only when asked for: every import costs each command

        nproc = int(options["--nproc"])
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return run(command)


def _parse(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    args = list(argv)
    if "--" not in args:
        raise SystemExit(USAGE)
    split = args.index("--")
    flags, command = args[:split], args[split + 1 :]
    if len(flags) % 2 or not command:
        raise SystemExit(USAGE)
    options = dict(zip(flags[::2], flags[1::2], strict=True))
    if not set(options) <= {"--socket", "--port", "--nproc"}:
        raise SystemExit(USAGE)
    return options, command


def listen(port: int) -> socket.socket:
    """A listener on the sandbox's loopback; only the sandbox's own processes can reach it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def serve(listener: socket.socket, socket_path: str) -> None:
    """Relay each connection to `socket_path`, until the listener is closed."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_relay, args=(client, socket_path), daemon=True).start()


def _relay(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    back.start()
    _copy(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    """Copy until `source` ends, then end `target`'s side too (a half-close, as TCP has)."""
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def run(command: Sequence[str]) -> int:
    """Run `command` with the signals above passed on; its exit code, 128 + N for signal N."""
    forward = Forwarder()
    # Handlers first, then the child: a signal in between must not kill the relay alone.
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        try:
            child = os.posix_spawnp(command[0], list(command), os.environ)
        except OSError as exc:
            print(f"cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
            return NOT_RUN
        forward.started(child)
        _, status = os.waitpid(child, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class Forwarder:
    """A signal handler passing signals on to the child; those that came before it, at once."""

    def __init__(self) -> None:
        self.child = 0
        self.pending: list[int] = []

    def __call__(self, sig: int, _frame: object = None) -> None:
        if self.child:
            os.kill(self.child, sig)
        else:
            self.pending.append(sig)

    def started(self, child: int) -> None:
        self.child = child
        for sig in self.pending:
            os.kill(child, sig)


if __name__ == "__main__":  # pragma: no cover - the entry point inside the sandbox
    sys.exit(main())
