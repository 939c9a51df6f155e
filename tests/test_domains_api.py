"""Custom domains through the API: adding (names checked, punycode stored, reserved names and
wildcards refused), DNS instructions, verifying against a real DNS server, one project per name
and the TXT-proven takeover, removing, and who may do what."""

from __future__ import annotations

import pytest

from tests.support.admins import sign_up_admin
from tests.support.api import bearer, sign_up
from tests.support.dns_server import dns_server
from tests.support.domains import (
    API_HOST,
    OUR_IP,
    ROOT,
    TARGET,
    DomainsApi,
    api,
)
from tests.support.projects import create

__all__ = ["api", "dns_server"]


@pytest.fixture
def ada(api: DomainsApi) -> str:
    token = sign_up(api.client, "ada@example.com")
    assert create(api.client, token, name="web").status_code == 201
    return token


@pytest.fixture
def bob(api: DomainsApi) -> str:
    token = sign_up(api.client, "bob@example.com")
    assert create(api.client, token, name="other").status_code == 201
    return token


def txt_token(body: dict[str, object]) -> str:
    [txt] = [item for item in body["instructions"] if item["type"] == "TXT"]  # type: ignore[attr-defined]
    return str(txt["value"])


def test_adding_a_domain_stores_it_pending_with_the_dns_records_to_create(
    api: DomainsApi, ada: str
) -> None:
    response = api.add(ada, "web", "WWW.Example.COM.")

    assert response.status_code == 201, response.text
    body = response.json()
    token = txt_token(body)
    assert len(token) == 40
    assert body | {"next_check_at": None} == {
        "name": "www.example.com",
        "display_name": "www.example.com",
        "project": "web",
        "state": "pending",
        "routing": "unknown",
        "redirect_to": None,
        "git_branch": None,
        "check_code": None,
        "check_detail": "",
        "checked_at": None,
        "next_check_at": None,
        "verified_at": None,
        "url": "https://www.example.com",
        "instructions": [
            {"type": "TXT", "name": "_scalemesh-challenge.www.example.com", "value": token},
            {"type": "CNAME", "name": "www.example.com", "value": TARGET},
            {"type": "A", "name": "www.example.com", "value": OUR_IP},
        ],
    }
    assert body["next_check_at"] is not None  # the reconcile loop checks it next
    [row] = api.rows()
    assert (row["name"], row["token"], row["verified_at"]) == ("www.example.com", token, None)
    assert api.heard == []  # nothing to serve yet
    assert api.listed(ada, "web").json() == {
        "domains": [api.show(ada, "web", "www.example.com").json()]
    }


def test_a_unicode_name_is_stored_as_punycode_and_shown_as_written(
    api: DomainsApi, ada: str
) -> None:
    response = api.add(ada, "web", "Bücher.Example")

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "xn--bcher-kva.example"
    assert response.json()["display_name"] == "bücher.example"
    assert api.rows()[0]["name"] == "xn--bcher-kva.example"
    assert api.show(ada, "web", "bücher.example").json()["name"] == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "of length >= 1"),
        ("   ", "it is empty"),
        ("example", "at least two labels"),
        ("exa mple.com", "not allowed"),
        ("under_score.example.com", "not allowed"),
        ("-start.example.com", "hyphen"),
        ("a..example.com", "Empty Label"),
        ("www.*.example.com", "a wildcard may only be the whole first label"),
        ("*.com", "a wildcard covers the names under a domain"),
        ("x" * 64 + ".example.com", "too long"),
        (".".join(["abcdefghi"] * 26) + ".com", "Domain too long"),
        ("*." + ".".join(["abcdefghi"] * 25) + ".com", "255 characters long; the limit is 253"),
        ("203.0.113.10", "an IP address is not a domain"),
        ("[2001:db8::1]", "an IP address is not a domain"),
        ("www.example.123", "cannot be a number"),
        ("xn--zz.example.com", "Invalid A-label"),
        ("☃.example.com", "not allowed"),
    ],
)
def test_a_name_that_is_not_a_domain_is_refused_with_why(
    api: DomainsApi, ada: str, name: str, says: str
) -> None:
    response = api.add(ada, "web", name)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert says in response.json()["detail"]
    assert api.rows() == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (ROOT, f"'{ROOT}' is the same as '{ROOT}': deployments are served under it."),
        (f"shop.{ROOT}", f"'shop.{ROOT}' is under '{ROOT}'"),
        (f"*.{ROOT}", f"'*.{ROOT}' is a wildcard over '{ROOT}'"),
        ("*.app", "a wildcard covers the names under a domain"),
        (API_HOST, f"'{API_HOST}' would cover '{API_HOST}', one of this server's own hostnames"),
        (TARGET, f"'{TARGET}' is under '{ROOT}'"),
        ("web.localhost", "'web.localhost' is under 'localhost': it is local."),
    ],
)
def test_our_own_names_are_refused(api: DomainsApi, name: str, says: str) -> None:
    admin = sign_up_admin(api.client, "root@example.com")  # not even an admin may
    assert create(api.client, admin, name="web").status_code == 201

    response = api.add(admin, "web", name)

    assert response.status_code in (400, 403), response.text
    assert says in response.json()["detail"]
    assert api.rows() == []


def test_a_wildcard_needs_an_admin_and_is_proven_at_its_parent(
    api: DomainsApi, ada: str, bob: str
) -> None:
    refused = api.add(bob, "other", "*.example.com")  # Ada made the first account: the admin
    added = api.add(ada, "web", "*.Example.com")

    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "Only an admin of this server may add a wildcard domain (*.example.com); "
        "add each name you need, like www.example.com."
    )
    assert added.status_code == 201, added.text
    token = txt_token(added.json())
    assert added.json()["instructions"][0]["name"] == "_scalemesh-challenge.example.com"
    api.prove("*.example.com", token)
    verified = api.verify(ada, "web", "*.example.com")
    assert verified.json()["state"] == "verified", verified.text
    assert verified.json()["routing"] == "ok"
    assert api.heard == [["*.example.com"]]


def test_verifying_checks_dns_now_and_says_what_is_missing(api: DomainsApi, ada: str) -> None:
    token = txt_token(api.add(ada, "web", "www.example.com").json())

    missing = api.verify(ada, "web", "www.example.com").json()
    api.dns.set("_scalemesh-challenge.www.example.com", "TXT", "someone else's")
    api.dns.set("www.example.com", "CNAME", "old-host.example.net")
    wrong = api.verify(ada, "web", "www.example.com").json()
    api.prove("www.example.com", token)
    verified = api.verify(ada, "web", "www.example.com").json()

    assert (missing["state"], missing["check_code"]) == ("pending", "txt_missing")
    assert missing["routing"] == "misconfigured"
    assert "www.example.com does not exist in DNS (NXDOMAIN)" in missing["check_detail"]
    assert (wrong["state"], wrong["check_code"]) == ("pending", "txt_wrong")
    assert '"someone else\'s"' in wrong["check_detail"]
    assert 'is a CNAME to "old-host.example.net"' in wrong["check_detail"]
    assert (verified["state"], verified["routing"], verified["check_code"]) == (
        "verified",
        "ok",
        None,
    )
    assert verified["verified_at"] is not None
    assert [item["type"] for item in verified["instructions"]] == ["CNAME", "A"]
    assert api.heard == [["www.example.com"]]  # verified: every proxy serves it now
    [row] = api.rows()
    assert row["updated_at"] == row["verified_at"]
    assert row["check_attempts"] == 0  # all well: checked again in a day


def test_a_name_belongs_to_one_project_and_the_claimant_is_told_how_to_prove_it(
    api: DomainsApi, ada: str, bob: str
) -> None:
    ada_token = txt_token(api.add(ada, "web", "www.example.com").json())
    api.prove("www.example.com", ada_token)
    api.verify(ada, "web", "www.example.com")

    again = api.add(ada, "web", "www.example.com")
    taken = api.add(bob, "other", "www.example.com")

    assert again.status_code == 409
    assert again.json()["detail"] == "www.example.com is already a domain of this project."
    assert taken.status_code == 409
    detail = taken.json()["detail"]
    assert detail.startswith(
        "www.example.com is a domain of another project. If it is yours, prove it: add a TXT "
        "record _scalemesh-challenge.www.example.com holding "
    )
    bob_token = detail.split(" holding ")[1].split(",")[0]
    assert len(bob_token) == 40
    assert bob_token != ada_token
    assert [row["project"] for row in api.rows()] == [1]
    assert api.show(bob, "other", "www.example.com").status_code == 404


def test_a_txt_proof_takes_the_name_over(api: DomainsApi, ada: str, bob: str) -> None:
    ada_token = txt_token(api.add(ada, "web", "example.com").json())
    api.add(ada, "web", "www.example.com", redirect_to="example.com")
    api.prove("example.com", ada_token)
    api.verify(ada, "web", "example.com")
    detail = api.add(bob, "other", "example.com").json()["detail"]
    bob_token = detail.split(" holding ")[1].split(",")[0]
    api.heard.clear()

    api.prove("example.com", bob_token)  # the name's owner now says: Bob's
    taken = api.add(bob, "other", "example.com")

    assert taken.status_code == 201, taken.text
    assert (taken.json()["state"], taken.json()["routing"]) == ("verified", "ok")
    assert taken.json()["project"] == "other"
    assert txt_token(taken.json()) if taken.json()["state"] == "pending" else True
    rows = {row["name"]: row for row in api.rows()}
    assert rows["example.com"]["token"] == bob_token
    assert rows["www.example.com"]["redirect_to"] is None  # its target is gone from Ada's
    assert api.heard == [["example.com", "www.example.com"]]
    assert [d["name"] for d in api.listed(ada, "web").json()["domains"]] == ["www.example.com"]
    assert [d["name"] for d in api.listed(bob, "other").json()["domains"]] == ["example.com"]


def test_removing_a_domain_tells_every_proxy(api: DomainsApi, ada: str) -> None:
    api.add(ada, "web", "www.example.com")

    removed = api.remove(ada, "web", "WWW.example.com")

    assert removed.status_code == 204
    assert api.rows() == []
    assert api.heard == [["www.example.com"]]
    gone = api.show(ada, "web", "www.example.com")
    assert gone.status_code == 404
    assert gone.json()["detail"] == "Project 'web' has no domain 'www.example.com'."
    assert api.remove(ada, "web", "www.example.com").status_code == 404
    assert api.show(ada, "web", "not a name").status_code == 404


def test_another_tenant_can_neither_see_nor_touch_your_domains(
    api: DomainsApi, ada: str, bob: str
) -> None:
    api.add(ada, "web", "www.example.com")

    answers = [
        api.listed(bob, "web"),
        api.show(bob, "web", "www.example.com"),
        api.verify(bob, "web", "www.example.com"),
        api.remove(bob, "web", "www.example.com"),
        api.change(bob, "web", "www.example.com", git_branch="x"),
        api.add(bob, "web", "shop.example.com"),
    ]
    through_own = [
        api.show(bob, "other", "www.example.com"),
        api.verify(bob, "other", "www.example.com"),
        api.remove(bob, "other", "www.example.com"),
    ]

    assert {a.status_code for a in answers} == {404}
    assert {a.json()["detail"] for a in answers} == {"You have no project 'web'."}
    assert {a.status_code for a in through_own} == {404}
    assert [row["name"] for row in api.rows()] == ["www.example.com"]
    assert api.dns.asked == []  # no DNS asked on anyone else's behalf
    assert api.client.get("/projects/web/domains").status_code == 401


def test_deleting_the_project_deletes_its_domains_and_tells_the_proxies(
    api: DomainsApi, ada: str
) -> None:
    api.add(ada, "web", "www.example.com")
    api.add(ada, "web", "shop.example.com")

    deleted = api.client.delete("/projects/web", headers=bearer(ada))

    assert deleted.status_code == 204
    assert api.rows() == []
    assert [sorted(names) for names in api.heard] == [["shop.example.com", "www.example.com"]]
