"""Resolve what a user asked to deploy (a branch, a tag or a sha) to one commit.

Resolution happens when the deployment is queued, so the build is of the commit the branch
pointed at then, whatever is pushed afterwards. A repository on the GitHub App is asked through
GitHub's API (`resolve_on_github`: no `git` needed); any other URL with `git ls-remote`
(`GitRefResolver`), and a machine without `git` says so (`GitUnavailable`), not a crash.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

LS_REMOTE_TIMEOUT_S = 30.0
_SHA = re.compile(r"^[0-9a-f]{40}$")
# What git refuses in a ref name (git-check-ref-format), plus a leading "-" (an option to git).
_BAD_REF = re.compile(r"[\x00-\x20~^:?*\[\\\x7f]|\.\.|//|@\{|\.lock$|^[-/.]|[/.]$")


def is_ref_name(name: str) -> bool:
    """Whether `name` can be a git branch or tag name."""
    return 0 < len(name) <= 255 and not _BAD_REF.search(name)


_SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")


class RefError(ValueError):
    """The ref does not exist, or the repository cannot be reached; the message says which."""


class GitUnavailable(RuntimeError):
    """`git` is not installed here, so a repository outside GitHub cannot be asked."""


@dataclass(frozen=True, slots=True)
class ResolvedRef:
    sha: str
    branch: str | None
    """The branch name when the ref was a branch; None for a tag or a bare sha."""
    ref: str
    """What was asked for, as given."""


@runtime_checkable  # Litestar checks injected values against their type
class RefResolver(Protocol):
    async def resolve(self, git_url: str, ref: str) -> ResolvedRef: ...


class CommitLookup(Protocol):
    """What `resolve_on_github` asks of GitHub (`app.github.api.GitHubApi` has both)."""

    async def branch_head(
        self, installation_id: int, repository: str, branch: str
    ) -> str | None: ...

    async def commit_of(self, installation_id: int, repository: str, ref: str) -> str | None: ...


def _name_or_sha(ref: str) -> ResolvedRef | str:
    """A full sha as it is, else the branch or tag name asked for; `RefError` for neither."""
    wanted = ref.strip()
    if _SHA.match(wanted.lower()):
        return ResolvedRef(sha=wanted.lower(), branch=None, ref=wanted)
    if _SHORT_SHA.match(wanted) and not wanted.isdigit():
        raise RefError(f"{wanted!r} looks like a short sha: give all 40 characters.")
    name = wanted.removeprefix("refs/heads/").removeprefix("refs/tags/")
    if not is_ref_name(name):
        raise RefError(f"{wanted!r} is not a branch, a tag or a full sha.")
    return name


async def resolve_on_github(
    github: CommitLookup, installation_id: int, repository: str, ref: str
) -> ResolvedRef:
    """`ref` in `repository` as GitHub's API sees it: a branch first, then a tag. GitHub's own
    errors (`GitHubError`) pass through: the caller decides what an outage means."""
    found = _name_or_sha(ref)
    if isinstance(found, ResolvedRef):
        return found
    head = await github.branch_head(installation_id, repository, found)
    if head is not None:
        return ResolvedRef(sha=head, branch=found, ref=ref.strip())
    # Not a branch: GitHub resolves a tag by its bare name.
    tagged = await github.commit_of(installation_id, repository, found)
    if tagged is not None:
        return ResolvedRef(sha=tagged, branch=None, ref=ref.strip())
    raise RefError(f"there is no branch or tag {found!r} in {repository}.")


class GitRefResolver:
    """Asks the repository itself with `git ls-remote`."""

    def __init__(self, timeout: float = LS_REMOTE_TIMEOUT_S, git: str = "git") -> None:
        self.timeout = timeout
        self.git = git

    async def resolve(self, git_url: str, ref: str) -> ResolvedRef:
        found = _name_or_sha(ref)
        if isinstance(found, ResolvedRef):
            return found
        wanted, name = ref.strip(), found
        heads, tags = await self._ls_remote(git_url, name)
        if name in heads:
            return ResolvedRef(sha=heads[name], branch=name, ref=wanted)
        if name in tags:
            return ResolvedRef(sha=tags[name], branch=None, ref=wanted)
        raise RefError(f"there is no branch or tag {name!r} in {git_url}.")

    async def _ls_remote(self, git_url: str, name: str) -> tuple[dict[str, str], dict[str, str]]:
        try:
            process = await self._start(git_url, name)
        except FileNotFoundError:
            raise GitUnavailable(
                f"git is not installed on this server, so {git_url} cannot be asked what "
                f"{name!r} is; deploy a full commit sha, or install git in the API's image."
            ) from None
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.communicate()
            raise RefError(f"{git_url} did not answer within {self.timeout:g} s.") from None
        if process.returncode != 0:
            reason = _last_line(err.decode(errors="replace")) or f"git exited {process.returncode}"
            raise RefError(f"could not read {git_url}: {reason}")
        return _parse_ls_remote(out.decode())

    async def _start(self, git_url: str, name: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self.git,
            "ls-remote",
            "--heads",
            "--tags",
            git_url,
            f"refs/heads/{name}",
            f"refs/tags/{name}",
            f"refs/tags/{name}^{{}}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            # Its own process group: git hands https to a helper process that must die too.
            start_new_session=True,
        )


def _parse_ls_remote(out: str) -> tuple[dict[str, str], dict[str, str]]:
    """Branch heads and tags (peeled to their commit) from `git ls-remote`'s output."""
    heads: dict[str, str] = {}
    tags: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, full = line.partition("\t")
        if full.startswith("refs/heads/"):
            heads[full.removeprefix("refs/heads/")] = sha
        elif full.endswith("^{}"):
            # An annotated tag: the peeled line names the commit itself.
            tags[full.removeprefix("refs/tags/").removesuffix("^{}")] = sha
        else:
            tags.setdefault(full.removeprefix("refs/tags/"), sha)
    return heads, tags


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("fatal: ") if lines else ""
