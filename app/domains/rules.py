"""What a custom domain may be: its name (IDNA2008, punycode, limits, wildcards), the names that
are ours and never a user's, its branch, and the challenge token that proves ownership.

A name is stored as lower-case ASCII (punycode for international labels: `bücher.example` is
`xn--bcher-kva.example`), without a trailing dot. A wildcard is only a leading `*.` over at least
two labels (`*.example.com`), and only an admin of this server may claim one: it covers every
name under it, hostnames other people may think of as theirs.

Refused as reserved (`domain_forbidden`): the root domain and every name under it (deployments
live there), the API's own host, the CNAME target, the proxy's metrics hosts, `localhost` and
names under it; IP addresses are not names at all (`domain_invalid`).

The token a project must publish at `_scalemesh-challenge.<name>` is an HMAC, under the secret
key, of (project, name): the same project claiming the same name always gets the same token, so
someone who finds the name claimed by another project can be told the token that proves it is
theirs before they claim it again (see `app.domains.service`).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

import idna

from app.errors import ErrorCode, UserError
from app.refs import is_ref_name
from app.settings import Settings
from app.settings_parts import KeyRing

MAX_NAME = 253
MAX_LABEL = 63
WILDCARD = "*."
CHALLENGE_LABEL = "_scalemesh-challenge"
TOKEN_LENGTH = 40
"""Hex digits of the HMAC kept: 160 bits, and short enough for any DNS provider's form."""
_TOKEN_PURPOSE = b"scalemesh domain challenge v1\x00"


@dataclass(frozen=True, slots=True)
class DomainName:
    """A checked name: lower-case ASCII, `*.` first for a wildcard."""

    name: str

    @property
    def wildcard(self) -> bool:
        return self.name.startswith(WILDCARD)

    @property
    def base(self) -> str:
        """The name without its wildcard: what DNS holds the challenge of."""
        return self.name.removeprefix(WILDCARD)

    @property
    def challenge(self) -> str:
        """Where the TXT record proving ownership lives (a wildcard's: of its parent)."""
        return f"{CHALLENGE_LABEL}.{self.base}"


def display_name(name: str) -> str:
    """The Unicode form people read (`bücher.example`); the stored name if it has none."""
    prefix = WILDCARD if name.startswith(WILDCARD) else ""
    try:
        return prefix + idna.decode(name.removeprefix(prefix))
    except idna.IDNAError:  # pragma: no cover - every stored name was encoded by `domain_name`
        return name


def _invalid(raw: str, why: str) -> UserError:
    return UserError(ErrorCode.DOMAIN_INVALID, f"{raw!r} is not a domain name you can add: {why}")


def domain_name(raw: str) -> DomainName:
    """`raw` as a stored name (`domain_invalid` when it cannot be one); wildcards are allowed
    here, and refused to non-admins by `check_allowed`."""
    text = raw.strip().lower().removesuffix(".")
    if not text:
        raise _invalid(raw, "it is empty.")
    if _is_address(text):
        raise _invalid(raw, "an IP address is not a domain; add a name that points at us.")
    wildcard = text.startswith(WILDCARD)
    rest = text.removeprefix(WILDCARD)
    if "*" in rest:
        raise _invalid(raw, "a wildcard may only be the whole first label, as in *.example.com.")
    try:
        encoded = idna.encode(rest, uts46=True, std3_rules=True, transitional=False).decode()
    except idna.IDNAError as exc:
        raise _invalid(raw, f"{exc}.") from None
    labels = encoded.split(".")
    if len(labels) < 2:
        raise _invalid(
            raw,
            "a wildcard covers the names under a domain, like *.example.com."
            if wildcard
            else "it needs at least two labels, like example.com.",
        )
    if labels[-1].isdigit():
        raise _invalid(raw, "the last label (the top-level domain) cannot be a number.")
    name = WILDCARD + encoded if wildcard else encoded
    if len(name) > MAX_NAME:
        raise _invalid(raw, f"it is {len(name)} characters long; the limit is {MAX_NAME}.")
    return DomainName(name)


def _is_address(text: str) -> bool:
    try:
        ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def reserved(settings: Settings) -> tuple[str, ...]:
    """Hostnames that are ours, exactly (names under the root domain are refused besides)."""
    api_host = (urlsplit(settings.public_url).hostname or "").lower()
    names = (api_host, settings.domains.cname_target, *settings.proxy_metrics_hosts)
    return tuple(name for name in dict.fromkeys(names) if name)


def _under(name: str, parent: str) -> bool:
    return name == parent or name.endswith(f".{parent}")


def reserved_reason(name: DomainName, settings: Settings) -> str | None:
    """Why `name` is ours and not the user's to claim; None when it is free to claim."""
    root = settings.root_domain
    for parent, why in ((root, "deployments are served under it"), ("localhost", "it is local")):
        if _under(name.base, parent) or (name.wildcard and _under(parent, name.base)):
            return f"{name.name!r} is {_relation(name, parent)} {parent!r}: {why}."
    for ours in reserved(settings):
        if name.name == ours or (name.wildcard and ours.partition(".")[2] == name.base):
            return f"{name.name!r} would cover {ours!r}, one of this server's own hostnames."
    return None


def _relation(name: DomainName, parent: str) -> str:
    if name.base == parent:
        return "the same as" if not name.wildcard else "a wildcard over"
    return "under" if _under(name.base, parent) else "a wildcard over"


def check_allowed(name: DomainName, settings: Settings, *, admin: bool) -> None:
    """`domain_forbidden` for a reserved name, or a wildcard claimed by a non-admin."""
    why = reserved_reason(name, settings)
    if why is not None:
        raise UserError(ErrorCode.DOMAIN_FORBIDDEN, why)
    if name.wildcard and not admin:
        raise UserError(
            ErrorCode.DOMAIN_FORBIDDEN,
            f"Only an admin of this server may add a wildcard domain ({name.name}); "
            f"add each name you need, like www.{name.base}.",
        )


def check_branch(raw: str | None) -> str | None:
    """A git branch to pin the domain to, or None for production."""
    if raw is None:
        return None
    branch = raw.strip().removeprefix("refs/heads/")
    if not is_ref_name(branch):
        raise UserError(ErrorCode.INVALID_BRANCH, f"git_branch {raw!r} is not a git branch name.")
    return branch


def _message(project_id: int, generation: str, name: str) -> bytes:
    # With the project's generation (`app.projects.records.generation`): SQLite gives a deleted
    # project's id to the next project made, and the TXT record the deleted one's owner left in
    # DNS must not prove that one's claim.
    return _TOKEN_PURPOSE + f"{project_id}\x00{generation}\x00{name}".encode()


def challenge_token(keys: KeyRing, project_id: int, name: str, *, generation: str) -> str:
    """What `_scalemesh-challenge.<name>` must hold for `project_id` (in its `generation`) to
    own `name`."""
    return keys.primary.mac(_message(project_id, generation, name))[:TOKEN_LENGTH]


def proof_tokens(keys: KeyRing, project_id: int, name: str, *, generation: str) -> frozenset[str]:
    """Every token that proves `project_id` (in its `generation`) owns `name`: one per key of
    the ring, so a token handed out before a key rotation still proves it."""
    message = _message(project_id, generation, name)
    return frozenset(mac[:TOKEN_LENGTH] for mac in keys.macs(message))
