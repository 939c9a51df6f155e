"""Typed views of the few webhook payload fields Scale Mesh reads.

GitHub adds fields to its payloads all the time; these views name only what we use and ignore the
rest (msgspec's default), so a new field never breaks a delivery. A payload missing a field we
need fails to decode with `msgspec.ValidationError`, which the edge records as a bad delivery.
"""

from __future__ import annotations

import msgspec

ZERO_SHA = "0" * 40
BRANCH_PREFIX = "refs/heads/"


class Account(msgspec.Struct, frozen=True):
    login: str
    type: str = "User"


class InstallationRef(msgspec.Struct, frozen=True):
    id: int


class Installation(msgspec.Struct, frozen=True):
    id: int
    account: Account


class RepositoryRef(msgspec.Struct, frozen=True):
    """A repository as `installation*` events list it (no clone URL there)."""

    id: int
    full_name: str
    private: bool = False


class Repository(msgspec.Struct, frozen=True):
    id: int
    full_name: str
    clone_url: str
    private: bool = False


class Commit(msgspec.Struct, frozen=True):
    id: str
    message: str = ""


class Push(msgspec.Struct, frozen=True):
    ref: str
    after: str
    repository: Repository
    deleted: bool = False
    head_commit: Commit | None = None
    installation: InstallationRef | None = None

    @property
    def branch(self) -> str | None:
        """The branch pushed to, or None for a tag (or any other ref)."""
        return self.ref.removeprefix(BRANCH_PREFIX) if self.ref.startswith(BRANCH_PREFIX) else None


class Delete(msgspec.Struct, frozen=True):
    """A branch or tag deleted (`delete`): `ref` is its bare name, `ref_type` which it was."""

    ref: str
    ref_type: str
    repository: Repository
    installation: InstallationRef | None = None


class PullRequestBranch(msgspec.Struct, frozen=True):
    ref: str
    sha: str
    repo: RepositoryRef | None = None
    """None when the fork it came from was deleted."""


class PullRequestBody(msgspec.Struct, frozen=True):
    head: PullRequestBranch
    base: PullRequestBranch
    """The branch it merges into, always of the event's repository."""
    title: str = ""
    merged: bool | None = None


class PullRequest(msgspec.Struct, frozen=True):
    action: str
    number: int
    pull_request: PullRequestBody
    repository: Repository
    installation: InstallationRef | None = None

    @property
    def from_fork(self) -> bool:
        head = self.pull_request.head.repo
        return head is None or head.id != self.repository.id


class InstallationEvent(msgspec.Struct, frozen=True):
    action: str
    installation: Installation
    repositories: list[RepositoryRef] = msgspec.field(default_factory=list)


class InstallationRepositories(msgspec.Struct, frozen=True):
    action: str
    installation: Installation
    repositories_added: list[RepositoryRef] = msgspec.field(default_factory=list)
    repositories_removed: list[RepositoryRef] = msgspec.field(default_factory=list)


class Envelope(msgspec.Struct, frozen=True):
    """What every delivery may carry, read before the event's own view."""

    action: str | None = None
