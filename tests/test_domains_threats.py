"""What another account can do to your custom domains through the API: nothing.

Each test is one attacker's move, and what it must leave unchanged.
"""

from __future__ import annotations

from tests.support.api import bearer, sign_up
from tests.support.dns_server import dns_server
from tests.support.domains import DomainsApi, api
from tests.support.projects import create

__all__ = ["api", "dns_server"]


def owner(api: DomainsApi, email: str, slug: str) -> str:
    token = sign_up(api.client, email)
    assert create(api.client, token, name=slug).status_code == 201
    return token


def test_a_redirect_cannot_send_visitors_to_another_projects_domain(api: DomainsApi) -> None:
    ada, bob = owner(api, "ada@example.com", "web"), owner(api, "bob@example.com", "other")
    assert api.add(ada, "web", "www.example.com").status_code == 201
    assert api.add(bob, "other", "www.bob.example").status_code == 201
    before = api.rows()

    added = api.add(bob, "other", "bob.example", redirect_to="www.example.com")

    assert added.status_code == 400
    assert added.json()["detail"].startswith("redirect_to must be another domain of this project")
    assert api.rows() == before


def test_a_claim_proven_with_the_owners_token_is_not_a_takeover(api: DomainsApi) -> None:
    """The owner's token is public (anyone can read the TXT record); it proves only the owner's
    project, so copying it into another claim moves nothing."""
    ada, bob = owner(api, "ada@example.com", "web"), owner(api, "bob@example.com", "other")
    ada_token = api.add(ada, "web", "www.example.com").json()["instructions"][0]["value"]
    api.prove("www.example.com", ada_token)
    assert api.verify(ada, "web", "www.example.com").status_code == 200
    before = api.rows()
    api.heard.clear()

    for _ in range(2):
        assert api.add(bob, "other", "www.example.com").status_code == 409

    assert api.rows() == before
    assert api.heard == []


def test_a_deleted_projects_proof_left_in_dns_does_not_verify_the_next_project_given_its_id(
    api: DomainsApi,
) -> None:
    """SQLite gives the newest project's id to the next project made once it is deleted. The
    TXT record its owner left behind proves that project only: another tenant's new project,
    given the same id, must not take the name with it (nor then its TLS certificate)."""
    ada = owner(api, "ada@example.com", "web")
    ada_token = api.add(ada, "web", "www.example.com").json()["instructions"][0]["value"]
    api.prove("www.example.com", ada_token)
    assert api.verify(ada, "web", "www.example.com").json()["state"] == "verified"
    assert api.client.delete("/projects/web", headers=bearer(ada)).status_code == 204
    bob = owner(api, "bob@example.com", "other")

    added = api.add(bob, "other", "www.example.com")
    checked = api.verify(bob, "other", "www.example.com").json()

    assert added.json()["instructions"][0]["value"] != ada_token
    assert (checked["state"], checked["check_code"]) == ("pending", "txt_wrong")
