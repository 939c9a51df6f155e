"""`scalemesh domains` against a live API whose DNS checks ask a DNS server in the test.

Each test signs up its own account and uses its own names, so they share one API and one zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.client.answers import DnsRecordAnswer, DomainAnswer
from app.client.domains import print_records
from tests.support import cli_client
from tests.support.api import bearer
from tests.support.cli_client import Account, Live, cli, serve_live
from tests.support.dns_server import DnsServer

CNAME_TARGET = "edge.scalemesh.test"
PUBLIC_IP = "203.0.113.10"

config = cli_client.config


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, dns: DnsServer
) -> Iterator[Live]:
    with serve_live(
        tmp_path_factory.mktemp("api"),
        sqlite_template,
        SCALEMESH_DNS_RESOLVERS=dns.resolvers,
        SCALEMESH_CNAME_TARGET=CNAME_TARGET,
        SCALEMESH_PUBLIC_IPS=PUBLIC_IP,
        # Domains are checked when a test says so (verify), not by the loop meanwhile.
        SCALEMESH_RECONCILE_INTERVAL="3600",
    ) as served:
        yield served


@pytest.fixture
def account(live: Live, config: Path) -> Account:
    account = live.account()
    cli_client.save(config, live.url, account.token)
    return account


def make_project(capsys: pytest.CaptureFixture[str], name: str) -> str:
    code, out, err = cli(capsys, "project", "create", name, "--repo", "octocat/hello-world")
    assert code == 0, err
    return out.split()[1].rstrip(":")


@pytest.mark.parametrize(
    "command",
    [["domains"], ["domains", "add"], ["domains", "ls"], ["domains", "rm"], ["domains", "verify"]],
    ids=" ".join,
)
def test_every_domains_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: scalemesh {' '.join(command)} ")


def test_a_domain_is_added_shown_its_records_verified_and_removed(
    account: Account, dns: DnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = make_project(capsys, "Shop")
    code, out, err = cli(capsys, "domains", "ls")
    assert (code, out) == (0, "")
    assert err == f"No domains on {slug} yet: scalemesh domains add NAME\n"

    # The only project is the one meant.
    code, out, err = cli(capsys, "domains", "add", "WWW.Shop.Example")
    assert code == 0, err
    [view] = account.get(f"/projects/{slug}/domains")["domains"]
    token = view["instructions"][0]["value"]
    assert view["instructions"][0] == {
        "type": "TXT",
        "name": "_scalemesh-challenge.www.shop.example",
        "value": token,
    }
    challenge = "_scalemesh-challenge.www.shop.example"
    width = len(challenge)
    assert out.splitlines() == [
        f"Added www.shop.example to {slug} (pending): it serves production "
        "once DNS proves you own it.",
        "Create these DNS records at your DNS provider:",
        f"  TYPE   {'NAME':<{width}}  VALUE",
        f"  TXT    {challenge}  {token}",
        f"  CNAME  {'www.shop.example':<{width}}  {CNAME_TARGET}",
        f"  A      {'www.shop.example':<{width}}  {PUBLIC_IP}",
        "Point the name at Scale Mesh with the CNAME, or, for a name that cannot have one "
        "(an apex such as example.com), with the A/AAAA records instead: not both.",
    ]
    assert err == f"Then run: scalemesh domains verify www.shop.example --project {slug}\n"

    # Nothing in DNS yet: verify says what is missing, shows the records again, and fails.
    code, out, err = cli(capsys, "domains", "verify", "www.shop.example", "--project", slug)
    assert code == 1
    assert out.startswith("www.shop.example: pending, routing misconfigured\n")
    assert f"  TXT    {challenge}  {token}" in out.splitlines()
    assert err.startswith("scalemesh: www.shop.example is not live yet: ")
    assert "_scalemesh-challenge.www.shop.example" in err
    assert len(err.splitlines()) == 1

    dns.set("_scalemesh-challenge.www.shop.example", "TXT", token)
    dns.set("www.shop.example", "CNAME", CNAME_TARGET)
    code, out, err = cli(capsys, "domains", "verify", "www.shop.example", "--project", slug)
    assert (code, err) == (0, "")
    assert out == (
        "www.shop.example is verified and points at Scale Mesh: https://www.shop.example\n"
    )

    # A redirecting domain and a branch's.
    code, out, err = cli(
        capsys, "domains", "add", "shop.example", "--redirect-to", "www.shop.example"
    )
    assert code == 0, err
    assert out.startswith(
        f"Added shop.example to {slug} (pending): it serves a redirect to www.shop.example "
    )
    code, _, err = cli(capsys, "domains", "add", "staging.shop.example", "--branch", "staging")
    assert code == 0, err

    assert cli(capsys, "domains", "verify", "shop.example")[0] == 1  # no records: misconfigured
    code, out, _ = cli(capsys, "domains", "ls", "--project", slug)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "ROUTING", "SERVES"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:4]}
    assert rows == {
        "www.shop.example": ["verified", "ok", "production"],
        "shop.example": ["pending", "misconfigured", "a", "redirect", "to", "www.shop.example"],
        "staging.shop.example": ["pending", "unknown", "branch", "staging"],
    }
    # What is wrong with each domain that is not live, one line each.
    assert lines[4].startswith("shop.example: ")
    assert "_scalemesh-challenge.shop.example" in lines[4]
    assert lines[5:] == [
        "staging.shop.example: not checked yet: run scalemesh domains verify staging.shop.example"
    ]

    code, out, err = cli(capsys, "domains", "rm", "staging.shop.example")
    assert (code, err) == (0, "")
    assert out == f"Removed staging.shop.example from {slug}; it is no longer served.\n"
    names = [d["name"] for d in account.get(f"/projects/{slug}/domains")["domains"]]
    assert sorted(names) == ["shop.example", "www.shop.example"]


def test_an_international_name_is_shown_in_both_forms(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(capsys, "Books")
    code, out, err = cli(capsys, "domains", "add", "bücher.example")
    assert code == 0, err
    assert out.startswith("Added bücher.example (xn--bcher-kva.example) to books")
    code, out, _ = cli(capsys, "domains", "ls")
    assert out.splitlines()[1].startswith("bücher.example (xn--bcher-kva.example)  pending")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["domains", "add", "not a name", "--project", "mine"], "not a name"),
        (["domains", "add", "x.example", "--project", "nope"], "You have no project 'nope'."),
        (["domains", "rm", "gone.example", "--project", "mine"], "gone.example"),
        (["domains", "verify", "gone.example", "--project", "mine"], "gone.example"),
        (["domains", "add", "mine.localhost", "--project", "mine"], "localhost"),
    ],
)
def test_mistakes_get_one_line(
    account: Account, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    slug = make_project(capsys, f"Mine {uuid.uuid4().hex[:8]}")
    code, out, err = cli(capsys, *[slug if arg == "mine" else arg for arg in args])

    assert code == 1
    assert out == ""
    assert err.startswith("scalemesh: ")
    assert message in err
    assert len(err.splitlines()) == 1


def test_a_domain_taken_by_another_project_is_refused_until_dns_proves_it_ours(
    live: Live, account: Account, dns: DnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    other = live.account()
    assert other.post("/project", {"name": "First", "repo": "octocat/a"}).status_code == 201
    claimed = other.post("/projects/first/domains", {"name": "taken.example"})
    assert claimed.status_code == 201, claimed.text
    slug = make_project(capsys, "Second")

    code, out, err = cli(capsys, "domains", "add", "taken.example", "--project", slug)

    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    assert "is a domain of another project" in err
    assert "_scalemesh-challenge.taken.example holding " in err
    # The TXT record the refusal names proves the name is ours: adding it again takes it over.
    token = err.split(" holding ")[1].split(",")[0]
    dns.set("_scalemesh-challenge.taken.example", "TXT", token)
    dns.set("taken.example", "CNAME", CNAME_TARGET)

    code, out, err = cli(capsys, "domains", "add", "taken.example", "--project", slug)

    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"Added taken.example to {slug} (verified): it serves production."
    assert "_scalemesh-challenge" not in out  # ownership is proven: no TXT record to create
    assert [d["name"] for d in account.get(f"/projects/{slug}/domains")["domains"]] == [
        "taken.example"
    ]
    with live.http() as http:
        gone = http.get("/projects/first/domains", headers=bearer(other.token)).json()
    assert gone == {"domains": []}


def test_without_a_project_and_several_of_them_the_command_asks_for_one(
    account: Account,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_project(capsys, "One")
    make_project(capsys, "Two")
    monkeypatch.chdir(tmp_path)

    code, _, err = cli(capsys, "domains", "ls")

    assert code == 1
    assert err == (
        "scalemesh: none of your projects (one, two) builds the repository here; "
        "name one: scalemesh domains ... --project PROJECT\n"
    )


def test_records_without_addresses_need_no_choice(capsys: pytest.CaptureFixture[str]) -> None:
    """Without SCALEMESH_PUBLIC_IPS there is only the CNAME to create: no alternative named."""
    domain = DomainAnswer(
        name="www.shop.example",
        display_name="www.shop.example",
        project="shop",
        state="verified",
        routing="misconfigured",
        url="https://www.shop.example",
        instructions=[DnsRecordAnswer("CNAME", "www.shop.example", CNAME_TARGET)],
    )

    print_records(domain)

    assert capsys.readouterr().out.splitlines() == [
        "Create these DNS records at your DNS provider:",
        "  TYPE   NAME              VALUE",
        f"  CNAME  www.shop.example  {CNAME_TARGET}",
    ]
