"""Hostname labels stay valid DNS labels, unique, and readable."""

from __future__ import annotations

from app.hostnames import MAX_LABEL, branch_label, deployment_label, fit, production_label, short_id

DEPLOYMENT = "0f8e2c1a-9b7d-4e6f-8a5b-3c2d1e0f9a8b"


def test_labels_by_kind() -> None:
    assert production_label("web") == "web"
    assert branch_label("web", "feature/Login_Page") == "web-git-feature-login-page"
    assert branch_label("web", "///") == "web-git-branch"
    assert deployment_label("web", DEPLOYMENT) == "web-0f8e2c1a9"
    assert short_id(DEPLOYMENT) == "0f8e2c1a9"


def test_long_labels_are_cut_with_a_hash_that_keeps_them_apart() -> None:
    slug = "a" * 48
    one = branch_label(slug, "feature/" + "x" * 40 + "-one")
    two = branch_label(slug, "feature/" + "x" * 40 + "-two")

    assert len(one) == len(two) == MAX_LABEL
    assert one != two
    assert one.startswith(slug + "-git-")
    assert fit("short") == "short"
