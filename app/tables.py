"""The database schema (DESIGN §3) as Piccolo tables: columns only.

The vocabulary stored in them (deployment states, targets, reported phases, error codes) is
defined by the code that owns it and checked when a row becomes a record, so this module
imports nothing of the app and every layer can read it.

Composite unique constraints are created by raw `CREATE UNIQUE INDEX` in the migrations, not with
Piccolo's `Unique([...])`, which emits `ALTER TABLE .. ADD CONSTRAINT` that SQLite refuses.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    BigInt,
    Boolean,
    Bytea,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class User(Table, tablename="scalemesh_user"):
    email = Varchar(length=254, unique=True)
    """Stored case-folded, so one address is one account whatever its spelling."""
    password_hash = Varchar(length=255)
    """Argon2 hash; empty for an account made by signing in with GitHub (no password works)."""
    is_admin = Boolean(default=False)
    """The first account, and those an admin makes admins: may add accounts and `file://` repos."""
    created_at = Timestamptz(default=TimestamptzNow())


class GitHubAccount(Table, tablename="scalemesh_github_account"):
    """The GitHub identity an account signed in with, and its user token (sealed like env vars).

    Accounts are found by GitHub's numeric user id, which survives renames; never by login or
    email. The token is what access checks ask GitHub with (`app.projects.access`).
    """

    user = ForeignKey(references=User, null=False, on_delete=OnDelete.cascade, unique=True)
    github_id = BigInt(unique=True)
    login = Varchar(length=100)
    token_sealed = Bytea()
    token_expires_at = Timestamptz(null=True, default=None)
    """None for a token that does not expire (an App with expiring user tokens turned off)."""
    refresh_sealed = Bytea(null=True, default=None)
    refresh_expires_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())


class OAuthState(Table, tablename="scalemesh_oauth_state"):
    """A "Sign in with GitHub" under way: its `state` (hashed), used once, within minutes."""

    state_hash = Varchar(length=64, unique=True)
    next_path = Varchar(length=2000, default="/")
    """Where to go once signed in: a path on this site."""
    expires_at = Timestamptz(index=True)


class Session(Table, tablename="scalemesh_session"):
    """A sign-in: the cookie and the bearer token are the same secret; only its hash is kept."""

    user = ForeignKey(references=User, null=False, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    last_seen_at = Timestamptz(default=TimestamptzNow())


class ApiToken(Table, tablename="scalemesh_api_token"):
    user = ForeignKey(references=User, null=False, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=100)
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz(null=True, default=None)
    """None: the token works until it is deleted."""
    last_used_at = Timestamptz(null=True, default=None)


class LoginFailure(Table, tablename="scalemesh_login_failure"):
    """One row per failed password check, counted per email and per client address."""

    email = Varchar(length=254, index=True)
    client = Varchar(length=64, default="", index=True)
    """The address the attempt came from (as the API saw it)."""
    failed_at = Timestamptz(default=TimestamptzNow(), index=True)


class Installation(Table, tablename="scalemesh_installation"):
    installation_id = BigInt(unique=True)
    account_login = Varchar(length=100)
    account_type = Varchar(length=20, default="User")
    suspended = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Repository(Table, tablename="scalemesh_repository"):
    github_id = BigInt(unique=True)
    full_name = Varchar(length=140, index=True)
    clone_url = Varchar(length=500)
    private = Boolean(default=False)
    installation = ForeignKey(
        references=Installation, null=False, on_delete=OnDelete.cascade, index=True
    )


class Project(Table, tablename="scalemesh_project"):
    slug = Varchar(length=63, unique=True)
    name = Varchar(length=100)
    owner = ForeignKey(references=User, null=False, on_delete=OnDelete.cascade, index=True)
    github_repository = Varchar(length=140, null=True, default=None, index=True)
    """`owner/name` when the project builds a GitHub repository, else None."""
    github_repository_id = BigInt(null=True, default=None, index=True)
    """GitHub's id of that repository once a user with push access on it bound the project:
    only then do pushes build it and does it get installation tokens. Survives renames."""
    git_url = Varchar(length=500)
    """What the builder clones: the GitHub https URL, or the URL the user gave."""
    production_branch = Varchar(length=255, default="main")
    root_directory = Varchar(length=255, null=True, default=None)
    install_command = Varchar(length=1000, null=True, default=None)
    build_command = Varchar(length=1000, null=True, default=None)
    output_directory = Varchar(length=255, null=True, default=None)
    allow_fork_builds = Boolean(default=False)
    protection = Varchar(length=20, default="none")
    """`app.projects.rules.Protection`: which deployments only signed-in viewers may open."""
    bypass_hash = Varchar(length=64, null=True, default=None)
    """Keyed hash of the project's protection bypass secret (shown once), when one was made."""
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    preview_ttl_days = Integer(null=True, default=None)
    """Previews idle (no push) this many days are torn down; None: the repository's
    `previews.ttlDays`, else never."""
    production_pinned_to = UUID(null=True, default=None)
    """The deployment production is pinned to by a rollback (`app.deployments.pinning`): new
    production builds still go ready but leave production alone. None: production follows
    pushes. Not a foreign key: a row referencing its own children would knot deletion."""
    production_pinned_at = Timestamptz(null=True, default=None)
    production_pinned_by = ForeignKey(
        references=User, null=True, default=None, on_delete=OnDelete.set_null
    )
    """Who pinned it, while that account exists."""
    production_github_deployment_id = BigInt(null=True, default=None)
    """The GitHub Deployment last told it serves production by a promote or rollback, to be
    marked `inactive` when the next one replaces it (`app.reporting.promotions`)."""


class EnvVar(Table, tablename="scalemesh_env_var"):
    """A build variable of a project in one scope; its value is sealed to (project id, name)."""

    project = ForeignKey(references=Project, null=False, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=255)
    value_sealed = Bytea()
    updated_at = Timestamptz(default=TimestamptzNow())
    scope = Varchar(length=20, default="production")
    """`production`, `preview` or `branch` (`app.projects.scopes.ScopeKind`)."""
    git_branch = Varchar(length=255, default="")
    """The branch of a `branch` scope, else "". One value per (project, name, scope, git_branch)."""


class Deployment(Table, tablename="scalemesh_deployment"):
    id = UUID(primary_key=True)
    project = ForeignKey(references=Project, null=False, on_delete=OnDelete.cascade, index=True)
    sha = Varchar(length=40, default="")
    git_ref = Varchar(length=255, default="")
    """What was asked for: a branch, tag or sha (`ref` would shadow Table.ref())."""
    branch = Varchar(length=255, null=True, default=None)
    pr_number = Integer(null=True, default=None)
    commit_message = Text(default="")
    target = Varchar(length=20, default="preview")
    """`app.deployments.lifecycle.Target`."""
    state = Varchar(length=20, default="queued", index=True)
    """`app.deployments.lifecycle.DeploymentState`."""
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    started_at = Timestamptz(null=True, default=None)
    ready_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
    runner_handle = Varchar(length=500, null=True, default=None)
    error = Text(null=True, default=None)
    """What went wrong, in words; `error_code` says which kind of failure it was."""
    error_code = Varchar(length=40, null=True, default=None)
    """`app.errors.ErrorCode` of a failed or cancelled deployment."""
    platform_fault = Boolean(default=False)
    """The failure was ours (runner, storage, restart), not the code's: GitHub gets `error`."""
    from_fork = Boolean(default=False)
    """Built from a fork's pull request: never with the project's env vars."""
    retired = Boolean(default=False)
    """Its pull request closed or its branch was deleted: its GitHub deployment is `inactive`."""
    github_deployment_id = BigInt(null=True, default=None)
    report_pending = Boolean(default=True)
    """GitHub has not heard of the latest change (every change sets it; `app.reporting`)."""
    reported_phase = Varchar(length=20, null=True, default=None)
    """`app.reporting.phases.ReportedPhase`: what GitHub was last told, or `unreported`."""
    report_claim = Varchar(length=32, null=True, default=None)
    """The random token of the replica telling GitHub now; cleared by every change."""
    report_claimed_until = Timestamptz(null=True, default=None)
    """When that claim goes stale (its replica died mid-report) and may be taken over."""
    attempts = Integer(default=0)
    """Builds started for it; one whose runner died with its API process is queued again."""
    report_attempts = Integer(default=0)
    """Failed attempts to tell GitHub of the latest change (0 once it heard; `app.reporting`)."""
    report_next_at = Timestamptz(null=True, default=None)
    """No report attempt before this: backoff after a failure, or the wait GitHub asked for."""
    report_error = Text(null=True, default=None)
    """Why the last report failed; cleared once GitHub heard."""
    report_error_status = Integer(null=True, default=None)
    """GitHub's HTTP status for that failure, when it answered."""
    report_failed_at = Timestamptz(null=True, default=None)
    """GitHub refused the report for good (a permanent 4xx): it is not retried."""
    runner_owner = Varchar(length=32, null=True, default=None)
    """The `Replica` that started its build and alone judges it while that replica lives."""
    start_after = Timestamptz(null=True, default=None)
    """A queued deployment waits until then (GitHub asked us to wait before minting a token)."""
    publish_pending = Boolean(default=False)
    """Ready, but its aliases may not point at it yet: set with `ready`, cleared once published."""
    finish_claimed_until = Timestamptz(null=True, default=None)
    """A replica is wrapping up the ending deployment until then; after, another may retry."""
    config = JSON(null=True, default=None)
    """The build's effective config, from its manifest once ready (`app.deployments.build_config`):
    each field's value and source, env names and scopes, warnings; null before, or if none."""
    teardown_at = Timestamptz(null=True, default=None, index=True)
    """A retired preview is torn down then (`app.retention`); None: nothing is due."""
    pruned_at = Timestamptz(null=True, default=None)
    """Its files were deleted then (torn down or past retention): its URL answers 410."""
    clear_cache = Boolean(default=False)
    """Built without restoring the build cache ("Redeploy without cache")."""
    base_branch = Varchar(length=255, null=True, default=None)
    """The branch its pull request merges into (`pull_request.base.ref`): a build of a branch
    with no cache yet, or a fork's, starts from that branch's cache. None: no pull request."""


class BuildToken(Table, tablename="scalemesh_build_token"):
    """A running build's bootstrap token (hashed): it fetches the spec once and sends log
    events; it dies when the build finishes, or at `expires_at`."""

    deployment = ForeignKey(
        references=Deployment, null=False, on_delete=OnDelete.cascade, unique=True
    )
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    spec_fetched_at = Timestamptz(null=True, default=None)
    """Set by the one spec fetch the token allows."""
    log_bytes = BigInt(default=0)
    """Log bytes taken through the events endpoint, against the build's log limit."""


class Alias(Table, tablename="scalemesh_alias"):
    """A hostname label (or a full custom hostname) that points at one deployment."""

    hostname = Varchar(length=253, unique=True)
    project = ForeignKey(references=Project, null=False, on_delete=OnDelete.cascade, index=True)
    deployment = ForeignKey(
        references=Deployment, null=False, on_delete=OnDelete.cascade, index=True
    )
    updated_at = Timestamptz(default=TimestamptzNow())


class Domain(Table, tablename="scalemesh_domain"):
    """A custom hostname a project claims; served only once DNS proves its owner controls it.

    It points at an alias label, not at a deployment: the project's production label, or its
    branch label when `git_branch` is set, so it follows every deploy, promote and rollback
    without being moved itself.
    """

    name = Varchar(length=253, unique=True)
    """Lower-case ASCII (IDNA punycode); `*.example.com` for a wildcard (admins only)."""
    project = ForeignKey(references=Project, null=False, on_delete=OnDelete.cascade, index=True)
    git_branch = Varchar(length=255, null=True, default=None)
    """Serve this branch's alias instead of production."""
    redirect_to = Varchar(length=253, null=True, default=None)
    """Another domain of the same project: this one answers 308 to it, path and query kept."""
    token = Varchar(length=64)
    """What the TXT record `_scalemesh-challenge.<name>` must hold to prove ownership."""
    verified_at = Timestamptz(null=True, default=None)
    """When ownership was proven; None while pending (the proxy serves nothing for it)."""
    routing = Varchar(length=20, default="unknown")
    """`app.domains.records.Routing`: whether the name points at us (`unknown`, `ok`,
    `misconfigured`), as of the last check."""
    check_code = Varchar(length=40, null=True, default=None)
    """The stable error code of the last check's finding, None when all was well."""
    check_detail = Text(default="")
    """What DNS returned and what it should return, for the user."""
    checked_at = Timestamptz(null=True, default=None)
    next_check_at = Timestamptz(null=True, default=None, index=True)
    """When the reconcile loop checks again (backoff); None when no check is due."""
    check_attempts = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    """Stamped on every change the proxy cares about (it polls the newest stamp)."""


class WebhookDelivery(Table, tablename="scalemesh_webhook_delivery"):
    delivery_id = Varchar(length=64, unique=True)
    event = Varchar(length=64)
    action = Varchar(length=64, null=True, default=None)
    payload = Text(default="")
    received_at = Timestamptz(default=TimestamptzNow())
    processed_at = Timestamptz(null=True, default=None, index=True)
    outcome = Varchar(length=255, null=True, default=None)
    body_sha256 = Varchar(length=64, null=True, default=None, unique=True)
    """The body's SHA-256 (hex): the same body under a new delivery id is a replay."""
    attempts = Integer(default=0)
    """Runs of its handlers that failed."""
    next_attempt_at = Timestamptz(null=True, default=None)
    """When a failed delivery is due again; null: at once."""
    claimed_until = Timestamptz(null=True, default=None)
    """The lease of the replica running it; another may take it once this has passed."""
    last_error = Varchar(length=255, null=True, default=None)
    dead_at = Timestamptz(null=True, default=None, index=True)
    """Given up on (a permanent error, or too many attempts): only an admin's retry runs it."""


class Replica(Table, tablename="scalemesh_replica"):
    """An API process running the reconcile loop, alive while its heartbeat is recent."""

    id = Varchar(length=32, primary_key=True)
    host = Varchar(length=255, default="")
    """The machine it runs on: a local build's process is visible only there."""
    heartbeat_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(default=TimestamptzNow())


class PullRequestComment(Table, tablename="scalemesh_pull_request_comment"):
    repository = Varchar(length=140)
    """`owner/name`; with `pr_number` unique (raw index in the migration)."""
    pr_number = Integer()
    comment_id = BigInt(null=True, default=None)
    """GitHub's id of the comment; None while one replica is creating it."""
    state = Varchar(length=20, default="written")
    """`app.reporting.comment.CommentState`: `writing` (held by one replica) or `written`."""
    updated_at = Timestamptz(default=TimestamptzNow())


class Chore(Table, tablename="scalemesh_chore"):
    """A background chore of the reconcile loop (`app.retention.chores`): who holds it until
    when, when it runs next (backoff after a failure), and where it stopped."""

    name = Varchar(length=40, unique=True)
    holder = Varchar(length=32, null=True, default=None)
    held_until = Timestamptz(null=True, default=None)
    next_run_at = Timestamptz(null=True, default=None)
    failures = Integer(default=0)
    """Failed runs in a row (storage errors): the next waits longer."""
    cursor = Text(default="")
    """Where a resumable chore (the storage sweep) goes on from; "" from the start."""


class PromotionReport(Table, tablename="scalemesh_promotion_report"):
    """A promote or rollback GitHub has not heard of yet, recorded with the move itself; the
    reporter tells GitHub, each project's in order, and retries (`app.reporting.promotions`)."""

    project = ForeignKey(references=Project, null=False, on_delete=OnDelete.cascade, index=True)
    deployment = ForeignKey(references=Deployment, null=False, on_delete=OnDelete.cascade)
    """What production serves now."""
    replaced = UUID(null=True, default=None)
    pinned = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    attempts = Integer(default=0)
    next_at = Timestamptz(null=True, default=None)
    failed_at = Timestamptz(null=True, default=None)
    """GitHub refused it (a 4xx): kept as a record, never retried."""
    error = Text(null=True, default=None)
    error_status = Integer(null=True, default=None)
    claim = Varchar(length=32, null=True, default=None)
    claimed_until = Timestamptz(null=True, default=None)


TABLES: tuple[type[Table], ...] = (
    User,
    GitHubAccount,
    OAuthState,
    Session,
    ApiToken,
    LoginFailure,
    Installation,
    Repository,
    Project,
    EnvVar,
    Deployment,
    BuildToken,
    Alias,
    Domain,
    WebhookDelivery,
    PullRequestComment,
    Replica,
    Chore,
    PromotionReport,
)
"""Every table, parents before children (the order they are created in)."""
