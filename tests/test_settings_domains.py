"""The custom-domain settings: defaults, what each accepts, and a clear error for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.settings_parts import SettingsError
from tests.support.api import TEST_SECRET_KEY


def settings_of(tmp_path: Path, **environ: str) -> Settings:
    return Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY, **environ}
    )


def test_the_defaults_point_custom_domains_at_a_name_under_the_root_domain(
    tmp_path: Path,
) -> None:
    settings = settings_of(tmp_path, SCALEMESH_ROOT_DOMAIN="example.app")

    assert settings.domains.cname_target == "cname.example.app"
    assert settings.domains.public_ips == ()
    assert settings.domains.dns_resolvers == ()
    assert settings.describe()["SCALEMESH_CNAME_TARGET"] == "cname.example.app"


def test_resolvers_take_ports_and_ipv6_and_addresses_are_kept_once_in_canonical_form(
    tmp_path: Path,
) -> None:
    settings = settings_of(
        tmp_path,
        SCALEMESH_DNS_RESOLVERS="::1, [2001:db8::53]:5353, [::2], 192.0.2.53:53,",
        SCALEMESH_PUBLIC_IPS="203.0.113.10,203.0.113.10, 2001:0db8:0::10",
    )

    assert settings.domains.dns_resolvers == (
        ("::1", 53),
        ("2001:db8::53", 5353),
        ("::2", 53),
        ("192.0.2.53", 53),
    )
    assert settings.domains.public_ips == ("203.0.113.10", "2001:db8::10")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SCALEMESH_CNAME_TARGET", "not a host", "must be a hostname"),
        ("SCALEMESH_CNAME_TARGET", "-bad.example.com", "must be a hostname"),
        ("SCALEMESH_CNAME_TARGET", ".", "must be a hostname"),
        ("SCALEMESH_PUBLIC_IPS", "203.0.113.10, proxy.example.com", "IP addresses"),
        ("SCALEMESH_PUBLIC_IPS", "10.0.0.0/8", "IP addresses"),
        ("SCALEMESH_DNS_RESOLVERS", "dns.example.com", "is not a resolver"),
        ("SCALEMESH_DNS_RESOLVERS", "127.0.0.1:0", "is not a resolver"),
        ("SCALEMESH_DNS_RESOLVERS", "127.0.0.1:70000", "is not a resolver"),
        ("SCALEMESH_DNS_RESOLVERS", "127.0.0.1:dns", "is not a resolver"),
        ("SCALEMESH_DNS_RESOLVERS", "[::1]x", "is not a resolver"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError, match=name) as raised:
        settings_of(tmp_path, **{name: value})

    assert says in str(raised.value)
