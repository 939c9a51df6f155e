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
_HOST = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*")


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


def alias_name(host: str, root_domain: str) -> str | None:
    """The `Alias.hostname` a `Host` header names, or None when it cannot be one.

    `shop.example.com` (root `example.com`) → `shop`; `www.shop.io` → `www.shop.io`. The port
    and a trailing dot are dropped; malformed hosts are refused before they cost a query.
    """
    name = host.strip().lower()
    head, colon, port = name.rpartition(":")
    if colon and port.isdigit():
        name = head
    name = name.removesuffix(".")
    if len(name) > 253 or not _HOST.fullmatch(name):
        return None
    suffix = f".{root_domain}"
    if name.endswith(suffix) and "." not in name[: -len(suffix)]:
        return name[: -len(suffix)]
    return name


def full_hostname(name: str, root_domain: str) -> str:
    """The hostname a browser uses for alias `name`: a label gets the root domain."""
    return name if "." in name else f"{name}.{root_domain}"


def domain_label(slug: str, git_branch: str | None) -> str:
    """The alias label a custom domain of project `slug` follows: production, or its branch's."""
    return branch_label(slug, git_branch) if git_branch else production_label(slug)


def domain_candidates(hostname: str) -> tuple[str, ...]:
    """The `Domain` names that may serve `hostname`, best first: itself, then the wildcard one
    level up (`a.shop.io` → `*.shop.io`; never `*.io`: a wildcard names a domain, not a TLD)."""
    parent = hostname.partition(".")[2]
    return (hostname, f"*.{parent}") if "." in parent else (hostname,)
