"""The build specification: everything one build needs, and the limits it runs under.

Shared by the builder (which reads it) and `app.runners` (which writes it). Standard library
only, so the builder image needs nothing of the app.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from builder.events import LogEvent

OUTPUTS_ROOT = "__outputs"
LOGS_ROOT = "__logs"
RESERVED_DIR = ".scalemesh/"
"""Inside a deployment's prefix, ours: a site's own files there are not uploaded."""
MANIFEST = RESERVED_DIR + "manifest.json"
"""Kept apart from the site's own paths: a site may well ship its own `/manifest.json`."""
SKIPPED = RESERVED_DIR + "skipped.json"
"""Written instead of the manifest when the build decided not to deploy: `{"reason": "..."}`."""
LOG_STREAM_PREFIX = "scalemesh:logs:"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_GENERATION = re.compile(r"[0-9]{1,24}")


class SpecError(ValueError):
    """The spec in the environment is missing a field or has a bad one."""


def project_prefix(project_id: int) -> str:
    """Where all of a project's deployments live in storage, ending with a slash."""
    return f"{OUTPUTS_ROOT}/{project_id}/"


def output_prefix(project_id: int, deployment_id: str) -> str:
    """Where a deployment's files live in storage, ending with a slash."""
    return f"{project_prefix(project_id)}{deployment_id}/"


def log_stream(deployment_id: str) -> str:
    """The Redis stream a deployment's log is written to."""
    return f"{LOG_STREAM_PREFIX}{deployment_id}"


@dataclass(frozen=True, slots=True)
class BuildLimits:
    """What one build may use; each is a setting (`SCALEMESH_BUILD_*`), enforced by the builder."""

    cpu_seconds: int = 1800
    """CPU time of every process of the build together, per command."""
    memory_mb: int = 4096
    processes: int = 1024
    """Processes and threads at once."""
    max_files: int = 20_000
    """Files in the output directory."""
    max_file_mb: int = 100
    """The largest single output file (and any file a command writes)."""
    max_output_mb: int = 1024
    """The output directory, all files together."""
    max_log_mb: int = 16
    """Log output of the build; past it the build is stopped."""
    cache_mb: int = 1024
    """The build cache archive (compressed); a larger one is not saved."""

    def to_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _LIMIT_NAMES}

    @classmethod
    def from_json(cls, raw: object) -> BuildLimits:
        if not isinstance(raw, dict):
            raise SpecError("limits must be an object")
        values: dict[str, int] = {}
        for name in _LIMIT_NAMES:
            value = raw.get(name, getattr(cls(), name))
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise SpecError(f"limits.{name} must be a whole number above 0")
            values[name] = value
        return cls(**values)


_LIMIT_NAMES = (
    "cpu_seconds",
    "memory_mb",
    "processes",
    "max_files",
    "max_file_mb",
    "max_output_mb",
    "max_log_mb",
    "cache_mb",
)


@dataclass(frozen=True, slots=True)
class StorageCredentials:
    """Short-lived S3 credentials that may write one deployment's prefix and nothing else."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: str = ""
    """ISO 8601, for the log only: the builder never renews them."""

    def to_json(self) -> dict[str, str]:
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
            "expiration": self.expiration,
        }

    @classmethod
    def from_json(cls, raw: object) -> StorageCredentials:
        if not isinstance(raw, dict) or not all(
            isinstance(raw.get(name), str) and raw.get(name)
            for name in ("access_key_id", "secret_access_key", "session_token")
        ):
            raise SpecError("storage_credentials must hold the three credential strings")
        return cls(
            access_key_id=raw["access_key_id"],
            secret_access_key=raw["secret_access_key"],
            session_token=raw["session_token"],
            expiration=str(raw.get("expiration") or ""),
        )


@dataclass(frozen=True, slots=True)
class BuildSpec:
    """Everything one build needs. The local runner writes it to the builder's stdin as JSON;
    a builder on ECS fetches it once from the API with its bootstrap token."""

    deployment_id: str
    project_id: int
    git_url: str
    """`https://...` or `file://...`; never carries credentials (see `token`)."""
    sha: str
    storage_url: str
    """`file:///dir` or `s3://bucket[/prefix]`: where `output_prefix` lives."""
    git_ref: str = ""
    """The branch or tag the sha came from, for the log only."""
    token: str = field(default="", repr=False)
    """A short-lived, repo-scoped, read-only token, sent as `x-access-token` basic auth."""
    root_directory: str | None = None
    install_command: str | None = None
    build_command: str | None = None
    output_directory: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The project's env vars, given to install and build; their values are masked in logs."""
    storage_endpoint_url: str | None = None
    storage_credentials: StorageCredentials | None = field(default=None, repr=False)
    """S3 credentials scoped to `output_prefix` (ECS); None: the builder's own (local)."""
    timeout: int = 900
    """Seconds the install and build steps may take together."""
    limits: BuildLimits = field(default_factory=BuildLimits)
    target: str = "preview"
    """`production` or `preview`: which environment's settings and variables apply."""
    branch: str = ""
    """The branch built ("" for a tag or a bare commit): branch-scoped settings and variables."""
    from_fork: bool = False
    """Built from a fork's pull request: it may read, never write, what the project keeps."""
    previous_sha: str = ""
    """The commit of the last ready deployment of this target (`SCALEMESH_PREVIOUS_SHA`)."""
    env_scopes: Mapping[str, str] = field(default_factory=dict)
    """For each name in `env`, the scope it came from (`production`, `preview`, `branch:x`)."""
    production_branch: str = ""
    """Whose build cache a branch without one (or a fork's pull request) starts from last."""
    base_branch: str = ""
    """The branch its pull request merges into ("": none): whose build cache a branch without
    one (or a fork's pull request) starts from before the production branch's."""
    clear_cache: bool = False
    """Build without restoring the cache ("Redeploy without cache"); a fresh one is saved."""
    cache_generation: str = ""
    """Digits naming this life of `project_id` (its creation time): SQLite gives a deleted
    project's id to the next one, whose builds must not read the deleted one's caches."""

    def __post_init__(self) -> None:
        if not _SHA.match(self.sha):
            raise SpecError(f"sha must be 40 hex characters, not {self.sha!r}")
        if self.cache_generation and not _GENERATION.fullmatch(self.cache_generation):
            raise SpecError(f"cache_generation must be digits, not {self.cache_generation!r}")
        if "@" in self.git_url.split("://", 1)[-1].split("/", 1)[0]:
            raise SpecError("git_url must not carry credentials; pass the token separately")

    @property
    def output_prefix(self) -> str:
        return output_prefix(self.project_id, self.deployment_id)

    @property
    def log_stream(self) -> str:
        return log_stream(self.deployment_id)

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON object (unset optional fields are left out)."""
        values: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "project_id": self.project_id,
            "git_url": self.git_url,
            "sha": self.sha,
            "git_ref": self.git_ref,
            "storage_url": self.storage_url,
            "timeout": self.timeout,
            "env": dict(sorted(self.env.items())),
            "limits": self.limits.to_json(),
            "target": self.target,
            "branch": self.branch,
            "from_fork": self.from_fork,
            "previous_sha": self.previous_sha,
            "env_scopes": dict(sorted(self.env_scopes.items())),
            "production_branch": self.production_branch,
            "base_branch": self.base_branch,
            "clear_cache": self.clear_cache,
        }
        optional: dict[str, Any] = {
            "token": self.token,
            "root_directory": self.root_directory,
            "install_command": self.install_command,
            "build_command": self.build_command,
            "output_directory": self.output_directory,
            "storage_endpoint_url": self.storage_endpoint_url,
            "cache_generation": self.cache_generation,
            "storage_credentials": (
                self.storage_credentials.to_json() if self.storage_credentials else None
            ),
        }
        values.update({name: value for name, value in optional.items() if value})
        return values

    @classmethod
    def from_json(cls, raw: object) -> BuildSpec:
        """The spec a JSON object describes; anything missing or mistyped is a `SpecError`."""
        if not isinstance(raw, dict):
            raise SpecError("the build spec must be a JSON object")

        def text(name: str, *, required: bool = False) -> str:
            value = raw.get(name, "")
            if not isinstance(value, str):
                raise SpecError(f"{name} must be a string")
            if required and not value:
                raise SpecError(f"{name} is not set")
            return value

        def number(name: str, default: int | None = None) -> int:
            value = raw.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(f"{name} is not a number")
            return value

        env = raw.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise SpecError("env must be a JSON object of strings")
        scopes = raw.get("env_scopes", {})
        if not isinstance(scopes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in scopes.items()
        ):
            raise SpecError("env_scopes must be a JSON object of strings")
        from_fork, clear_cache = raw.get("from_fork", False), raw.get("clear_cache", False)
        for name, flag in (("from_fork", from_fork), ("clear_cache", clear_cache)):
            if not isinstance(flag, bool):
                raise SpecError(f"{name} must be true or false")
        previous = text("previous_sha")
        if previous and not _SHA.match(previous):
            raise SpecError(f"previous_sha must be 40 hex characters, not {previous!r}")
        credentials = raw.get("storage_credentials")
        return cls(
            deployment_id=text("deployment_id", required=True),
            project_id=number("project_id"),
            git_url=text("git_url", required=True),
            sha=text("sha", required=True),
            storage_url=text("storage_url", required=True),
            git_ref=text("git_ref"),
            token=text("token"),
            root_directory=text("root_directory") or None,
            install_command=text("install_command") or None,
            build_command=text("build_command") or None,
            output_directory=text("output_directory") or None,
            env=env,
            storage_endpoint_url=text("storage_endpoint_url") or None,
            storage_credentials=(
                None if credentials is None else StorageCredentials.from_json(credentials)
            ),
            timeout=number("timeout", 900),
            limits=BuildLimits.from_json(raw.get("limits", {})),
            target=text("target") or "preview",
            branch=text("branch"),
            from_fork=from_fork,
            previous_sha=previous,
            env_scopes=scopes,
            production_branch=text("production_branch"),
            base_branch=text("base_branch"),
            clear_cache=clear_cache,
            cache_generation=text("cache_generation"),
        )


STEPS = ("clone", "detect", "install", "build", "upload")
"""The builder's steps, in order; each logs a `step` event at its start and end."""

# --- masking --------------------------------------------------------------------------------
# Shared by the builder's sinks and the app's runners, which mask again what they pass on.

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter env var values ("1", "true", "dev") are too common to mask without wrecking the log."""
MAX_TEXT = 8192
"""Characters per `line` event; longer lines become several events, cut after masking."""
_LINE_BREAKS = re.compile(r"[\r\n]+")


def basic_auth(token: str) -> str:
    """The base64 credential git sends for a GitHub token (`x-access-token:<token>`)."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")


class Masker:
    """Replaces every secret in a text with `***`."""

    def __init__(self, secrets: Iterable[str], *, always: Iterable[str] = ()) -> None:
        """`secrets` are masked from `MIN_SECRET_LENGTH` characters; `always` at any length."""
        pieces = {secret for secret in always if secret}
        for secret in secrets:
            # A multi-line value (a PEM key) never shows whole in one log line: mask each line.
            for piece in [secret, *_LINE_BREAKS.split(secret)]:
                if len(piece) >= MIN_SECRET_LENGTH:
                    pieces.add(piece)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(pieces, key=lambda piece: (-len(piece), piece))
        self.secrets: tuple[str, ...] = tuple(ordered)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def for_spec(cls, spec: BuildSpec, *, bootstrap: str = "") -> Masker:
        """Masks the build's env values, its clone token, its storage credentials and the
        bootstrap token it authenticates to the API with."""
        tokens = [spec.token, basic_auth(spec.token)] if spec.token else []
        if spec.storage_credentials is not None:
            tokens += [
                spec.storage_credentials.secret_access_key,
                spec.storage_credentials.session_token,
            ]
        return cls(spec.env.values(), always=[*tokens, bootstrap])

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def prepare(self, event: LogEvent) -> list[LogEvent]:
        """The event masked, and a long `line` cut into events of at most `MAX_TEXT` chars."""
        event = event.copy()
        error = event.get("error")
        if isinstance(error, str):
            event["error"] = self.mask(error)
        if event["type"] != "line":
            return [event]
        text = self.mask(str(event.get("text", "")))
        pieces = [text[i : i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)] or [""]
        return [_with_text(event, piece) for piece in pieces]


def _with_text(event: LogEvent, text: str) -> LogEvent:
    piece = event.copy()
    piece["text"] = text
    return piece


# --- the manifest -------------------------------------------------------------------------
# Written last, at `<output prefix>.scalemesh/manifest.json`; a deployment is ready only when it
# exists.
# {
#   "version": 1, "deployment_id": "...", "project_id": 1, "sha": "...",
#   "framework": "vite" | "astro" | "create-react-app" | "docusaurus" | "sveltekit" | "next"
#                | "eleventy" | "static" | "custom",
#   "output_directory": "dist",
#   "files": {"index.html": {"size": 1234, "sha256": "...",
#                            "content_type": "text/html; charset=utf-8",
#                            "cache_control": "public, max-age=0, must-revalidate",
#                            "encodings": ["br", "gzip"],
#                            "br_size": 512}, ...},  # the .br sibling's size, else "size";
#                                 # missing in manifests written before sizes were recorded
#   "steps": {"clone": 812, "detect": 3, "install": 10234, "build": 5012, "upload": 901},  # ms
#   "created_at": "2026-11-27T21:00:00Z",
#   "config": {                                  # the effective config (builder.siteconfig)
#     "file": "scalemesh.json" | "vercel.json" | "apps/web/netlify.toml" | null,
#     "fields": {"buildCommand": {"value": "npm run build", "source": "scalemesh.json"}, ...},
#                # every field of scalemesh.json but $schema, env, rules; sources: "project",
#                # the file, "detected", "default"; values: string, bool, list, object, null
#     "env": {"API_URL": "production", "DEBUG": "scalemesh.json: preview"},  # names, never values
#     "warnings": ["vercel.json:3: functions (serverless functions) are not supported: ..."]
#   },
#   "rules": {"semantics": "vercel" | "netlify", "source": "scalemesh.json",
#             "clean_urls": false, "trailing_slash": null,
#             "redirects": [...], "rewrites": [...], "headers": [...]}  # builder.siterules; left
#                                                                   # out when the file has none
# }
# A file with "br" in `encodings` also exists as `<path>.br`, "gzip" as `<path>.gz`; those
# siblings are not listed as files of their own.
MANIFEST_VERSION = 1
