"""What Scale Mesh asks of GitHub, as an interface, and the errors it may raise.

Importing this costs nothing: githubkit (slow to import) is loaded by the composition root
(`app.asgi`) only when a GitHub App is configured, so the CLI's other commands start fast.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class GitHubError(Exception):
    """A GitHub API call failed (network, 5xx, rate limit, refusal).

    `status` is the HTTP status, or None when no answer came (or the call was refused here).
    """

    status: int | None
    retry_after: float | None
    """Seconds GitHub asked us to wait (rate limits), when it said."""

    def __init__(
        self, message: str, status: int | None = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        """GitHub refused the request itself: asking again the same way gets the same answer.

        A 4xx other than 401 (a revoked token: the next call mints another), 408 (timeout) and
        429 (rate limit); a 403 that is a rate limit (it carries a wait) is not permanent
        either. No answer, and every 5xx, may pass.
        """
        status = self.status
        if status is None or not 400 <= status < 500 or status in (401, 408, 429):
            return False
        return not (status == 403 and self.retry_after is not None)


class CommentGone(GitHubError):
    """The comment to edit no longer exists (deleted on GitHub: 404/410)."""


# Runtime-checkable: Litestar checks an injected dependency with isinstance() against its
# annotated type, and a plain Protocol refuses isinstance().
@runtime_checkable
class GitHubApi(Protocol):
    """What Scale Mesh asks of GitHub. `repository` is always "owner/name"."""

    async def repo_token(self, installation_id: int, repository: str) -> str:
        """A fresh installation token limited to `repository` ("owner/name"), permissions {"contents": "read"} only — handed to one build."""  # noqa: E501

    async def set_commit_status(
        self,
        installation_id: int,
        repository: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str,
    ) -> None: ...

    async def create_deployment(
        self,
        installation_id: int,
        repository: str,
        *,
        sha: str,
        environment: str,
        description: str,
        transient: bool,
        production: bool,
    ) -> int:
        """POST a GitHub Deployment with ref=sha, required_contexts=[], auto_merge=False; return its id."""  # noqa: E501

    async def set_deployment_status(
        self,
        installation_id: int,
        repository: str,
        deployment_id: int,
        *,
        state: str,
        environment_url: str | None,
        log_url: str,
        description: str,
    ) -> None: ...

    async def create_comment(
        self, installation_id: int, repository: str, number: int, body: str
    ) -> int: ...

    async def update_comment(
        self, installation_id: int, repository: str, comment_id: int, body: str
    ) -> None:
        """Raises CommentGone when the comment was deleted."""

    async def find_comment(
        self, installation_id: int, repository: str, number: int, marker: str
    ) -> int | None:
        """The id of the first comment on issue/PR `number` whose body contains `marker` (all pages), else None."""  # noqa: E501

    async def branch_head(self, installation_id: int, repository: str, branch: str) -> str | None:
        """The sha `branch` points at now, or None when the repository has no such branch."""

    async def commit_of(self, installation_id: int, repository: str, ref: str) -> str | None:
        """The commit sha a branch, tag or sha names, or None when it names none."""

    async def aclose(self) -> None: ...
