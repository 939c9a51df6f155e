"""Creating projects through the API in tests."""

from __future__ import annotations

from typing import Any

from tests.support.api import Client, bearer


def create(client: Client, token: str, **body: Any) -> Any:
    body.setdefault("repo", "octocat/hello-world")
    return client.post("/project", json=body, headers=bearer(token))
