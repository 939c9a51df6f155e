"""deploy/caddy/Caddyfile as Caddy itself reads it (`caddy adapt`), and Caddy run as a user.

Production (`acme`, the default): preview names under one DNS-01 wildcard, public on-demand
certificates for other names only after the proxy's ask. `internal` (make dev-tls, the tests):
the same sites on Caddy's local CA. Caddy runs without root, in its own directories, and stops
cleanly on SIGTERM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.caddy import CADDYFILE, Caddy, adapt, caddy_env
from tests.support.ports import refused_port

ROOT_DOMAIN = "example.app"
PROXY = "10.0.0.5:8080"
DNS_LINE = "dns cloudflare {env.CLOUDFLARE_API_TOKEN}"


def production_env(home: Path) -> dict[str, str]:
    """What the Caddyfile reads in production: the issuer left to its default (`acme`)."""
    environ = caddy_env(home, SCALEMESH_ROOT_DOMAIN=ROOT_DOMAIN, SCALEMESH_PROXY_ADDRESS=PROXY)
    del environ["SCALEMESH_CADDY_ISSUER"], environ["SCALEMESH_CADDY_ADMIN"]
    return environ


def config(environ: dict[str, str], caddyfile: Path = CADDYFILE) -> dict[str, Any]:
    adapted = adapt(environ, caddyfile)
    assert adapted.returncode == 0, adapted.stderr
    # Caddy warns of a Caddyfile `caddy fmt` would change: keep it in Caddy's own format.
    assert "not formatted" not in adapted.stderr
    loaded: dict[str, Any] = json.loads(adapted.stdout)
    return loaded


def policies(loaded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """TLS automation policies by subject (`*`: the on-demand policy for any other name)."""
    found = {}
    for policy in loaded["apps"]["tls"]["automation"]["policies"]:
        for subject in policy.get("subjects", ["*"]):
            found[subject] = policy
    return found


def upstreams(loaded: dict[str, Any]) -> dict[str, list[str]]:
    """Each site's hosts (`*` for the catch-all) → where it proxies to."""
    (server,) = loaded["apps"]["http"]["servers"].values()
    found = {}
    for route in server["routes"]:
        hosts = route.get("match", [{"host": ["*"]}])[0]["host"]
        (handler,) = route["handle"][0]["routes"][0]["handle"]
        for host in hosts:
            found[host] = [upstream["dial"] for upstream in handler["upstreams"]]
    return found


def test_custom_domains_get_certificates_only_when_the_proxy_allows_them(tmp_path: Path) -> None:
    loaded = config(production_env(tmp_path) | {"SCALEMESH_CADDY_ISSUER": "internal"})

    on_demand = loaded["apps"]["tls"]["automation"]["on_demand"]
    assert on_demand["permission"] == {
        "module": "http",
        "endpoint": f"http://{PROXY}/_scalemesh/tls-allowed",
    }
    by_subject = policies(loaded)
    assert by_subject["*"]["on_demand"] is True
    # The root domain's names are one wildcard, never issued on demand one by one.
    assert "on_demand" not in by_subject[f"*.{ROOT_DOMAIN}"]
    assert [issuer["module"] for issuer in by_subject[f"*.{ROOT_DOMAIN}"]["issuers"]] == [
        "internal"
    ]
    assert [issuer["module"] for issuer in by_subject["*"]["issuers"]] == ["internal"]
    routes = upstreams(loaded)
    assert routes[f"*.{ROOT_DOMAIN}"] == routes["*"] == [PROXY]
    assert routes["api.example.com"] == ["127.0.0.1:8000"]
    # The standard ports unless told; the system's trust store is never touched (that needs
    # root); the admin endpoint only on this machine's loopback.
    http = loaded["apps"]["http"]
    assert (http["http_port"], http["https_port"]) == (80, 443)
    assert loaded["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    assert loaded["admin"] == {"listen": "localhost:2019"}


def test_production_takes_public_certificates_and_the_wildcard_by_dns01(tmp_path: Path) -> None:
    # As shipped, the DNS provider is the operator's to choose: the stock Caddy has no DNS
    # module, and says exactly which line to change.
    shipped = adapt(production_env(tmp_path))
    assert shipped.returncode != 0
    assert "module not registered: dns.providers.cloudflare" in shipped.stderr
    assert "import wildcard_acme" in shipped.stderr
    # The rest of it is a working production configuration: that one line replaced by another
    # of the `tls` block (a block may not be empty), Caddy takes it.
    text = CADDYFILE.read_text()
    assert text.count(DNS_LINE) == 1
    without_dns = tmp_path / "Caddyfile"
    without_dns.write_text(text.replace(DNS_LINE, "key_type p256"))

    loaded = config(production_env(tmp_path), without_dns)

    by_subject = policies(loaded)
    for subject in (f"*.{ROOT_DOMAIN}", "*"):
        issuers = by_subject[subject]["issuers"]
        assert {issuer["module"] for issuer in issuers} == {"acme"}
        assert {issuer["email"] for issuer in issuers} == {"ops@example.com"}
    assert by_subject["*"]["on_demand"] is True


def test_caddy_runs_as_this_user_in_its_own_directories_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    with refused_port() as nothing:
        caddy = Caddy(
            tmp_path / "caddy", root_domain=ROOT_DOMAIN, proxy_address=f"127.0.0.1:{nothing}"
        )
        caddy.start()
        try:
            served = caddy.served_names(f"web.{ROOT_DOMAIN}")
        finally:
            code = caddy.stop()

    assert served == [f"*.{ROOT_DOMAIN}"]
    assert caddy.root_cert.is_file()
    assert code == 0, caddy.service.output()
    assert '"signal":"SIGTERM"' in caddy.service.output()
