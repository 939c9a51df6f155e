"""Hostname labels for deployments (DESIGN §6): one DNS label under the root domain each.

- `<project>`: the production alias;
- `<project>-git-<branch>`: the newest ready deployment of a branch;
- `<project>-<short id>`: one deployment, forever.
A label longer than 63 characters is cut and given a short hash, so it stays unique.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_LABEL = 63
SHORT_ID = 9
_HASH = 6


def slugify(text: str, limit: int = MAX_LABEL) -> str:
    """Lowercase ASCII letters, digits and single hyphens, at most `limit` characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def fit(label: str) -> str:
    """`label` if it is a valid length, else a cut-down version ending in a hash of the whole."""
    if len(label) <= MAX_LABEL:
        return label
    digest = hashlib.sha256(label.encode()).hexdigest()[:_HASH]
    return f"{label[: MAX_LABEL - _HASH - 1].rstrip('-')}-{digest}"


def short_id(deployment_id: str) -> str:
    return deployment_id.replace("-", "")[:SHORT_ID]


def production_label(slug: str) -> str:
    return slug


def branch_label(slug: str, branch: str) -> str:
    return fit(f"{slug}-git-{slugify(branch, limit=200) or 'branch'}")


def deployment_label(slug: str, deployment_id: str) -> str:
    return fit(f"{slug}-{short_id(deployment_id)}")
