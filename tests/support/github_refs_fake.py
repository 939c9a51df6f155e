"""The fake GitHub's branches, tags and commits: what `branch_head` and `commit_of` read.

`FakeGitHubApi.refs` is one of these. A test moves a branch with `set_branch` (a push, as
GitHub would see it) and names tags with `set_tag`; every sha so named is a known commit.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.github_shapes import error

_FULL_SHA = re.compile(r"[0-9a-f]{40}")


class FakeRefs:
    """Branch heads and tags per repository ("owner/name")."""

    def __init__(self) -> None:
        self.branches: dict[tuple[str, str], str] = {}
        self.tags: dict[tuple[str, str], str] = {}

    def set_branch(self, repository: str, branch: str, sha: str) -> None:
        self.branches[(repository, branch)] = sha

    def delete_branch(self, repository: str, branch: str) -> None:
        self.branches.pop((repository, branch), None)

    def set_tag(self, repository: str, tag: str, sha: str) -> None:
        self.tags[(repository, tag)] = sha

    def get_branch(self, repository: str, branch: str) -> httpx.Response:
        sha = self.branches.get((repository, branch))
        if sha is None:
            return error(404, "Branch not found")
        return httpx.Response(200, json=_branch_json(branch, sha))

    def get_commit(self, repository: str, ref: str) -> httpx.Response:
        sha = self.branches.get((repository, ref)) or self.tags.get((repository, ref))
        if sha is None and _FULL_SHA.fullmatch(ref) and ref in self._known(repository):
            sha = ref
        if sha is None:
            if _FULL_SHA.fullmatch(ref):
                return error(422, f"No commit found for SHA: {ref}")
            return error(404, "Not Found")
        return httpx.Response(200, json={"sha": sha, "commit": {"message": ""}})

    def _known(self, repository: str) -> set[str]:
        return {
            sha
            for (repo, _), sha in [*self.branches.items(), *self.tags.items()]
            if repo == repository
        }


def _branch_json(branch: str, sha: str) -> dict[str, Any]:
    return {"name": branch, "commit": {"sha": sha}, "protected": False}
