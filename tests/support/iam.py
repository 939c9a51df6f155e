"""Just enough of IAM's policy evaluation to check what a policy lets through, offline.

moto checks a policy's grammar but enforces neither role policies nor session policies, so the
tests ask these few lines instead: Allow statements only (ours have no Deny), `*` and `?` in
actions and resources as IAM reads them (`*` crosses `/`), and a session's rights as what both
its role's policy and its session policy allow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ECS = Path(__file__).resolve().parent.parent.parent / "deploy" / "ecs"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ECS / name).read_text())
    return document


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _matches(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    expression = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(expression, value, flags) is not None


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether one of the policy's Allow statements covers `action` on `resource`."""
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", "these policies only allow"
        if any(
            _matches(pattern, action, case_sensitive=False)
            for pattern in _listed(statement["Action"])
        ) and any(
            _matches(pattern, resource, case_sensitive=True)
            for pattern in _listed(statement["Resource"])
        ):
            return True
    return False


def session_allows(
    role_policy: dict[str, Any], session_policy: dict[str, Any], action: str, resource: str
) -> bool:
    """An assumed-role session with a session policy may do only what both allow."""
    return allows(role_policy, action, resource) and allows(session_policy, action, resource)
