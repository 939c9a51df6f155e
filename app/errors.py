"""The stable error codes, the kind of each, and `UserError`: the domain's one way to refuse.

Domain code raises `UserError(code, detail)`: a code that never changes and a sentence saying
what to do. It knows nothing of HTTP or GitHub. `app.http.errors` turns a kind into an HTTP
answer (`STATUS` below); `app.reporting.messages` turns a deployment's code into what GitHub
shows. Codes of deployment outcomes are stored in `Deployment.error_code`, so they are never
renamed (RTD's `BuildUserError` ids are the model).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ErrorKind(StrEnum):
    """Who must act, and how; for a request, the value is the API body's `error` field."""

    INVALID = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_MANY_REQUESTS = "too_many_requests"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    TOO_LARGE = "too_large"
    BUILD = "build"
    """The repository's own build went wrong: its owner fixes the code or the settings."""
    PLATFORM = "platform"
    """Ours (a runner, storage, a restart): logged, and the user is told to retry."""
    STOPPED = "stopped"
    """Not built on purpose: cancelled, superseded, refused."""


class ErrorCode(StrEnum):
    """Every stable error code. Stored values: never rename one, only add."""

    # Requests refused.
    INVALID_REQUEST = "invalid_request"
    INVALID_NAME = "invalid_name"
    INVALID_REPO = "invalid_repo"
    INVALID_BRANCH = "invalid_branch"
    INVALID_PATH = "invalid_path"
    INVALID_COMMAND = "invalid_command"
    INVALID_TTL = "invalid_ttl"
    INVALID_ENV = "invalid_env"
    INVALID_EMAIL = "invalid_email"
    INVALID_PASSWORD = "invalid_password"  # noqa: S105 - an error code, not a password
    UNKNOWN_REF = "unknown_ref"
    NUL_CHARACTER = "nul_character"
    BAD_DELIVERY = "bad_delivery"
    NOT_SIGNED_IN = "not_signed_in"
    WRONG_CREDENTIALS = "wrong_credentials"
    BAD_SIGNATURE = "bad_signature"
    PROJECT_NOT_FOUND = "project_not_found"
    DEPLOYMENT_NOT_FOUND = "deployment_not_found"
    SLUG_TAKEN = "slug_taken"
    EMAIL_TAKEN = "email_taken"
    NOT_CANCELLABLE = "not_cancellable"
    NOT_PROMOTABLE = "not_promotable"
    TOO_MANY_SIGN_INS = "too_many_sign_ins"
    GITHUB_NOT_CONFIGURED = "github_not_configured"
    SIGNUP_CLOSED = "signup_closed"
    ADMIN_ONLY = "admin_only"
    PERMISSION_DENIED = "permission_denied"
    GITHUB_LINK_REQUIRED = "github_link_required"
    REPOSITORY_NOT_FOUND = "repository_not_found"
    OAUTH_STATE_INVALID = "oauth_state_invalid"
    OAUTH_REFUSED = "oauth_refused"
    OAUTH_PENDING = "oauth_pending"
    GITHUB_UNAVAILABLE = "github_unavailable"
    GIT_UNAVAILABLE = "git_unavailable"
    NOT_JSON = "not_json"
    CROSS_SITE = "cross_site"
    TOKEN_NOT_FOUND = "token_not_found"  # noqa: S105 - an error code
    # Custom domains (`app.domains`).
    DOMAIN_INVALID = "domain_invalid"
    DOMAIN_FORBIDDEN = "domain_forbidden"
    DOMAIN_TAKEN = "domain_taken"
    DOMAIN_NOT_FOUND = "domain_not_found"
    DOMAIN_REDIRECT_INVALID = "domain_redirect_invalid"
    DOMAIN_IN_USE = "domain_in_use"
    DOMAIN_LIMIT = "domain_limit"
    # A builder's calls to the API (`app.builds`), authenticated by its bootstrap token.
    BUILD_TOKEN_INVALID = "build_token_invalid"  # noqa: S105 - an error code
    BUILD_TOKEN_EXPIRED = "build_token_expired"  # noqa: S105 - an error code
    BUILD_TOKEN_OTHER_BUILD = "build_token_other_build"  # noqa: S105 - an error code
    BUILD_NOT_RUNNING = "build_not_running"
    SPEC_ALREADY_FETCHED = "spec_already_fetched"
    SPEC_UNAVAILABLE = "spec_unavailable"
    UPLOAD_GRANT_UNAVAILABLE = "upload_grant_unavailable"
    BAD_LOG_EVENT = "bad_log_event"
    BUILD_LOG_TOO_LARGE = "build_log_too_large"
    # The log bus (Redis) did not answer, and no archive stood in for it.
    LOG_UNAVAILABLE = "log_unavailable"
    # Why a deployment did not go live (`Deployment.error_code`).
    BUILD_FAILED = "build_failed"
    TIMEOUT = "timeout"
    NO_OUTPUT = "no_output"
    START_FAILED = "start_failed"
    ENV_UNOPENABLE = "env_unopenable"
    CLONE_TOKEN_UNAVAILABLE = "clone_token_unavailable"  # noqa: S105 - an error code
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    BRANCH_DELETED = "branch_deleted"
    FORK_REFUSED = "fork_refused"
    ALIAS_TAKEN = "alias_taken"
    # Env var scopes (`app.projects.scopes`).
    ENV_SCOPE_INVALID = "env_scope_invalid"
    ENV_BRANCH_INVALID = "env_branch_invalid"
    ENV_NOT_FOUND = "env_not_found"
    # A deployment's diff against production (`app.deployments.diffs`).
    DIFF_NOT_READY = "diff_not_ready"
    DIFF_NO_PRODUCTION = "diff_no_production"
    DIFF_MANIFEST_GONE = "diff_manifest_gone"
    DIFF_MANIFEST_UNREADABLE = "diff_manifest_unreadable"
    DIFF_STORAGE_UNAVAILABLE = "diff_storage_unavailable"
    CACHE_REDEPLOY_NO_BRANCH = "cache_redeploy_no_branch"
    STORAGE_UNAVAILABLE = "storage_unavailable"


_C, _K = ErrorCode, ErrorKind

KIND: Mapping[ErrorCode, ErrorKind] = MappingProxyType(
    {
        _C.INVALID_REQUEST: _K.INVALID,
        _C.INVALID_NAME: _K.INVALID,
        _C.INVALID_REPO: _K.INVALID,
        _C.INVALID_BRANCH: _K.INVALID,
        _C.INVALID_PATH: _K.INVALID,
        _C.INVALID_COMMAND: _K.INVALID,
        _C.INVALID_TTL: _K.INVALID,
        _C.INVALID_ENV: _K.INVALID,
        _C.INVALID_EMAIL: _K.INVALID,
        _C.INVALID_PASSWORD: _K.INVALID,
        _C.UNKNOWN_REF: _K.INVALID,
        _C.NUL_CHARACTER: _K.INVALID,
        _C.BAD_DELIVERY: _K.INVALID,
        _C.NOT_SIGNED_IN: _K.UNAUTHORIZED,
        _C.WRONG_CREDENTIALS: _K.UNAUTHORIZED,
        _C.BAD_SIGNATURE: _K.UNAUTHORIZED,
        _C.PROJECT_NOT_FOUND: _K.NOT_FOUND,
        _C.DEPLOYMENT_NOT_FOUND: _K.NOT_FOUND,
        _C.SLUG_TAKEN: _K.CONFLICT,
        _C.EMAIL_TAKEN: _K.CONFLICT,
        _C.NOT_CANCELLABLE: _K.CONFLICT,
        _C.NOT_PROMOTABLE: _K.CONFLICT,
        _C.TOO_MANY_SIGN_INS: _K.TOO_MANY_REQUESTS,
        _C.GITHUB_NOT_CONFIGURED: _K.UNAVAILABLE,
        _C.SIGNUP_CLOSED: _K.FORBIDDEN,
        _C.ADMIN_ONLY: _K.FORBIDDEN,
        _C.PERMISSION_DENIED: _K.FORBIDDEN,
        _C.GITHUB_LINK_REQUIRED: _K.FORBIDDEN,
        _C.REPOSITORY_NOT_FOUND: _K.NOT_FOUND,
        _C.OAUTH_STATE_INVALID: _K.INVALID,
        _C.OAUTH_REFUSED: _K.INVALID,
        _C.OAUTH_PENDING: _K.CONFLICT,
        _C.GITHUB_UNAVAILABLE: _K.UNAVAILABLE,
        _C.GIT_UNAVAILABLE: _K.UNAVAILABLE,
        _C.NOT_JSON: _K.UNSUPPORTED_MEDIA_TYPE,
        _C.CROSS_SITE: _K.FORBIDDEN,
        _C.TOKEN_NOT_FOUND: _K.NOT_FOUND,
        _C.DOMAIN_INVALID: _K.INVALID,
        _C.DOMAIN_FORBIDDEN: _K.FORBIDDEN,
        _C.DOMAIN_TAKEN: _K.CONFLICT,
        _C.DOMAIN_NOT_FOUND: _K.NOT_FOUND,
        _C.DOMAIN_REDIRECT_INVALID: _K.INVALID,
        _C.DOMAIN_IN_USE: _K.CONFLICT,
        _C.DOMAIN_LIMIT: _K.FORBIDDEN,
        _C.BUILD_TOKEN_INVALID: _K.UNAUTHORIZED,
        _C.BUILD_TOKEN_EXPIRED: _K.UNAUTHORIZED,
        _C.BUILD_TOKEN_OTHER_BUILD: _K.FORBIDDEN,
        _C.BUILD_NOT_RUNNING: _K.CONFLICT,
        _C.SPEC_ALREADY_FETCHED: _K.CONFLICT,
        _C.SPEC_UNAVAILABLE: _K.CONFLICT,
        _C.UPLOAD_GRANT_UNAVAILABLE: _K.UNAVAILABLE,
        _C.BAD_LOG_EVENT: _K.INVALID,
        _C.BUILD_LOG_TOO_LARGE: _K.TOO_LARGE,
        _C.LOG_UNAVAILABLE: _K.UNAVAILABLE,
        _C.BUILD_FAILED: _K.BUILD,
        _C.TIMEOUT: _K.BUILD,
        _C.NO_OUTPUT: _K.PLATFORM,
        _C.START_FAILED: _K.PLATFORM,
        _C.ENV_UNOPENABLE: _K.PLATFORM,
        _C.CLONE_TOKEN_UNAVAILABLE: _K.PLATFORM,
        _C.INTERRUPTED: _K.PLATFORM,
        _C.CANCELLED: _K.STOPPED,
        _C.SUPERSEDED: _K.STOPPED,
        _C.BRANCH_DELETED: _K.STOPPED,
        _C.FORK_REFUSED: _K.STOPPED,
        _C.ALIAS_TAKEN: _K.PLATFORM,
        _C.ENV_SCOPE_INVALID: _K.INVALID,
        _C.ENV_BRANCH_INVALID: _K.INVALID,
        _C.ENV_NOT_FOUND: _K.NOT_FOUND,
        _C.DIFF_NOT_READY: _K.CONFLICT,
        _C.DIFF_NO_PRODUCTION: _K.NOT_FOUND,
        _C.DIFF_MANIFEST_GONE: _K.NOT_FOUND,
        _C.DIFF_MANIFEST_UNREADABLE: _K.CONFLICT,
        _C.DIFF_STORAGE_UNAVAILABLE: _K.UNAVAILABLE,
        _C.CACHE_REDEPLOY_NO_BRANCH: _K.CONFLICT,
        _C.STORAGE_UNAVAILABLE: _K.UNAVAILABLE,
    }
)
"""The kind of every code."""

STATUS: Mapping[ErrorKind, int] = MappingProxyType(
    {
        _K.INVALID: 400,
        _K.UNAUTHORIZED: 401,
        _K.FORBIDDEN: 403,
        _K.NOT_FOUND: 404,
        _K.CONFLICT: 409,
        _K.TOO_MANY_REQUESTS: 429,
        _K.UNAVAILABLE: 503,
        _K.UNSUPPORTED_MEDIA_TYPE: 415,
        _K.TOO_LARGE: 413,
        # Deployment outcomes are not answers to a request; were one raised, these fit.
        _K.BUILD: 422,
        _K.PLATFORM: 503,
        _K.STOPPED: 409,
    }
)
"""The HTTP status of every kind: the one mapping from the domain to HTTP."""

DEPLOYMENT_CODES = frozenset(
    code for code, kind in KIND.items() if kind in {_K.BUILD, _K.PLATFORM, _K.STOPPED}
)
"""The codes a deployment can end with (`Deployment.error_code`)."""


class UserError(Exception):
    """A refusal the caller can act on: a stable code and a sentence saying what to do."""

    def __init__(self, code: ErrorCode, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        """Seconds until trying again can succeed, when that is known (throttling)."""

    @property
    def kind(self) -> ErrorKind:
        return KIND[self.code]
