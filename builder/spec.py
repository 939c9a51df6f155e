"""The build specification: everything one build needs, passed to the builder as env vars.

Shared by the builder (which reads it) and `app.runners` (which writes it). Standard library
only, so the builder image needs nothing of the app.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from builder.events import LogEvent

PREFIX = "SCALEMESH_BUILD_"
OUTPUTS_ROOT = "__outputs"
LOGS_ROOT = "__logs"
RESERVED_DIR = ".scalemesh/"
"""Inside a deployment's prefix, ours: a site's own files there are not uploaded."""
MANIFEST = RESERVED_DIR + "manifest.json"
"""Kept apart from the site's own paths: a site may well ship its own `/manifest.json`."""
LOG_STREAM_PREFIX = "scalemesh:logs:"
STDOUT_SINK = "stdout"
_SHA = re.compile(r"^[0-9a-f]{40}$")


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
class BuildSpec:
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
    log_sink: str = STDOUT_SINK
    """`stdout` (JSON lines, read by the local runner) or a `redis://` URL."""
    storage_endpoint_url: str | None = None
    timeout: int = 900
    """Seconds the install and build steps may take together."""

    def __post_init__(self) -> None:
        if not _SHA.match(self.sha):
            raise SpecError(f"sha must be 40 hex characters, not {self.sha!r}")
        if "@" in self.git_url.split("://", 1)[-1].split("/", 1)[0]:
            raise SpecError("git_url must not carry credentials; pass the token separately")

    @property
    def output_prefix(self) -> str:
        return output_prefix(self.project_id, self.deployment_id)

    @property
    def log_stream(self) -> str:
        return log_stream(self.deployment_id)

    def to_env(self) -> dict[str, str]:
        """The spec as environment variables (unset optional fields are left out)."""
        values: dict[str, str] = {
            "DEPLOYMENT_ID": self.deployment_id,
            "PROJECT_ID": str(self.project_id),
            "GIT_URL": self.git_url,
            "SHA": self.sha,
            "GIT_REF": self.git_ref,
            "STORAGE_URL": self.storage_url,
            "LOG_SINK": self.log_sink,
            "TIMEOUT": str(self.timeout),
            "ENV": json.dumps(dict(self.env), sort_keys=True),
        }
        optional = {
            "TOKEN": self.token,
            "ROOT_DIRECTORY": self.root_directory,
            "INSTALL_COMMAND": self.install_command,
            "BUILD_COMMAND": self.build_command,
            "OUTPUT_DIRECTORY": self.output_directory,
            "STORAGE_ENDPOINT_URL": self.storage_endpoint_url,
        }
        values.update({name: value for name, value in optional.items() if value})
        return {PREFIX + name: value for name, value in values.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BuildSpec:
        def required(name: str) -> str:
            value = environ.get(PREFIX + name, "")
            if not value:
                raise SpecError(f"{PREFIX}{name} is not set")
            return value

        def optional(name: str) -> str | None:
            return environ.get(PREFIX + name) or None

        try:
            project_id = int(required("PROJECT_ID"))
            timeout = int(environ.get(PREFIX + "TIMEOUT", "900"))
        except ValueError as exc:
            raise SpecError(f"a numeric build setting is not a number: {exc}") from None
        try:
            env = json.loads(environ.get(PREFIX + "ENV", "{}"))
        except json.JSONDecodeError:
            raise SpecError(f"{PREFIX}ENV is not JSON") from None
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise SpecError(f"{PREFIX}ENV must be a JSON object of strings")
        return cls(
            deployment_id=required("DEPLOYMENT_ID"),
            project_id=project_id,
            git_url=required("GIT_URL"),
            sha=required("SHA"),
            storage_url=required("STORAGE_URL"),
            git_ref=environ.get(PREFIX + "GIT_REF", ""),
            token=environ.get(PREFIX + "TOKEN", ""),
            root_directory=optional("ROOT_DIRECTORY"),
            install_command=optional("INSTALL_COMMAND"),
            build_command=optional("BUILD_COMMAND"),
            output_directory=optional("OUTPUT_DIRECTORY"),
            env=env,
            log_sink=environ.get(PREFIX + "LOG_SINK", STDOUT_SINK),
            storage_endpoint_url=optional("STORAGE_ENDPOINT_URL"),
            timeout=timeout,
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
    def for_spec(cls, spec: BuildSpec) -> Masker:
        tokens = [spec.token, basic_auth(spec.token)] if spec.token else []
        return cls(spec.env.values(), always=tokens)

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
#                            "encodings": ["br", "gzip"]}, ...},
#   "steps": {"clone": 812, "detect": 3, "install": 10234, "build": 5012, "upload": 901},  # ms
#   "created_at": "2026-11-27T21:00:00Z"
# }
# A file with "br" in `encodings` also exists as `<path>.br`, "gzip" as `<path>.gz`; those
# siblings are not listed as files of their own.
MANIFEST_VERSION = 1
