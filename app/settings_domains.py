"""Reading and checking the custom-domain settings: where a domain must point, and whom to ask.

- `SCALEMESH_CNAME_TARGET`: the hostname a custom domain's CNAME must name (default
  `cname.<root domain>`, which the root domain's wildcard record already sends to the proxy);
- `SCALEMESH_PUBLIC_IPS`: the proxy's public addresses, for names that cannot be a CNAME (an
  apex such as `example.com`): their A/AAAA records must all be among these;
- `SCALEMESH_DNS_RESOLVERS`: `ip` or `ip:port` (`[v6]:port`) of the resolvers the checks ask;
  empty: the system's (`/etc/resolv.conf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

from app.settings_parsing import EnvReader, is_dns_label
from app.settings_parts import SettingsError

DOMAIN_VARIABLES = ("SCALEMESH_CNAME_TARGET", "SCALEMESH_PUBLIC_IPS", "SCALEMESH_DNS_RESOLVERS")
DNS_PORT = 53


@dataclass(frozen=True, slots=True)
class DomainSettings:
    cname_target: str = "cname.localhost"
    """Lower-case, no trailing dot."""
    public_ips: tuple[str, ...] = ()
    """Canonical text of each address (`2001:db8::1`, not `2001:DB8:0::1`)."""
    dns_resolvers: tuple[tuple[str, int], ...] = ()
    """(address, port) of each resolver to ask; empty: the system's."""


def parse_domains(env: EnvReader, root_domain: str) -> DomainSettings:
    target = env.get("SCALEMESH_CNAME_TARGET", f"cname.{root_domain}").strip(".").lower()
    if not target or not all(is_dns_label(label) for label in target.split(".")):
        raise SettingsError(
            "SCALEMESH_CNAME_TARGET", f"must be a hostname like cname.example.com, not {target!r}"
        )
    return DomainSettings(
        cname_target=target,
        public_ips=_addresses(env),
        dns_resolvers=_resolvers(env),
    )


def _addresses(env: EnvReader) -> tuple[str, ...]:
    raw = env.get("SCALEMESH_PUBLIC_IPS")
    try:
        found = [str(ip_address(part.strip())) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise SettingsError(
            "SCALEMESH_PUBLIC_IPS",
            f"must be comma-separated IP addresses like 203.0.113.10, 2001:db8::10 ({exc})",
        ) from None
    return tuple(dict.fromkeys(found))


def _resolvers(env: EnvReader) -> tuple[tuple[str, int], ...]:
    raw = env.get("SCALEMESH_DNS_RESOLVERS")
    return tuple(_resolver(part.strip()) for part in raw.split(",") if part.strip())


def _resolver(text: str) -> tuple[str, int]:
    """`1.1.1.1`, `127.0.0.1:5353`, `::1` or `[::1]:5353`."""
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = str(ip_address(host))
        number = int(port)
    except ValueError:
        number, address = 0, ""
    if not 0 < number < 65536 or not address:
        raise SettingsError(
            "SCALEMESH_DNS_RESOLVERS",
            f"{text!r} is not a resolver: write ip or ip:port, e.g. 1.1.1.1, 127.0.0.1:5353, "
            "[2001:db8::53]:53",
        )
    return address, number
