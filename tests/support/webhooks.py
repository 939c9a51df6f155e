"""GitHub webhook deliveries for tests: the real payloads in `tests/fixtures/github/`, signed.

The payloads come from octokit/webhooks; `payload()` points each at the test installation, and
`signature()` signs a body with the test App's webhook secret, as GitHub does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from tests.support.github_fake import WEBHOOK_SECRET

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
REPO = "Codertocat/Hello-World"
REPO_ID = 186853002  # GitHub's id of REPO in every fixture that names it
INSTALLATION = 957387  # the id in installation.created.json


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    if "installation" in data:  # the fixtures come from different installations
        data["installation"]["id"] = INSTALLATION
    return data


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
