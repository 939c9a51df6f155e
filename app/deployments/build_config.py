"""A deployment's build config: what its manifest says of the effective config (each field's
value and where it came from, env names and scopes, warnings), copied into
`scalemesh_deployment.config` when it becomes ready, and read back for the API and the page.

The manifest is the build's output, so it is checked here (its shape with msgspec, its size)
before anything of it is stored; a config that does not pass is left out, never an error: the
deployment is ready either way.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from app.deployments.manifests import ManifestTooLarge, read_manifest
from app.storage import Storage
from app.tables import Deployment

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 64 << 10
"""The stored config, encoded; a larger one (thousands of warnings) is stored without them."""
MAX_TEXT = 4096


class ConfigField(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    value: str | bool | list[str] | dict[str, Any] | None
    """A string, a boolean, a list (watchPaths), an object (previews) or null (unset)."""
    source: str
    """`project`, the config file (`scalemesh.json`), `detected` or `default`."""


class BuildConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The effective build config of a deployment, as its build reported it."""

    file: str | None
    """The config file read (`scalemesh.json`, `web/netlify.toml`), or null: none."""
    fields: dict[str, ConfigField]
    """scalemesh.json's field names → value and source."""
    env: dict[str, str]
    """Env var names → the scope each came from; never their values."""
    warnings: list[str]
    """What the config file asked for that was not applied."""


class _Manifest(msgspec.Struct):
    config: BuildConfig | None = None


async def record_config(storage: Storage, prefix: str, deployment_id: str) -> None:
    """Copy the manifest's config at `prefix` into the deployment; on any trouble, log it and
    store nothing (it is what the build said of itself, not what makes it ready)."""
    try:
        config = of_manifest(await read_manifest(storage, prefix))
    except ManifestTooLarge:
        log.warning("manifest too large to read its config", extra={"deployment_id": deployment_id})
        return
    except Exception as exc:  # storage trouble: the deployment is ready all the same
        log.warning(
            "could not read the build config",
            extra={"deployment_id": deployment_id, "error": repr(exc)},
        )
        return
    text = None if config is None else encoded(config)
    if text is not None:
        await Deployment.update({Deployment.config: text}).where(
            Deployment._meta.primary_key == deployment_id
        )


def of_manifest(data: bytes) -> BuildConfig | None:
    """The config a manifest holds, checked; None when it holds none or a malformed one."""
    try:
        return msgspec.json.decode(data, type=_Manifest).config
    except msgspec.DecodeError:
        return None


def encoded(config: BuildConfig) -> str | None:
    """The config as stored: long texts cut, and within `MAX_CONFIG_BYTES` (without its
    warnings if need be); None when even that is too large."""
    cut = BuildConfig(
        file=_short(config.file),
        fields={
            name[:64]: ConfigField(_short_value(field.value), field.source[:256])
            for name, field in list(config.fields.items())[:64]
        },
        env={name[:256]: scope[:512] for name, scope in list(config.env.items())[:1000]},
        warnings=[_short(text) or "" for text in config.warnings[:200]],
    )
    data = msgspec.json.encode(cut)
    if len(data) > MAX_CONFIG_BYTES:
        data = msgspec.json.encode(msgspec.structs.replace(cut, warnings=[]))
    return data.decode() if len(data) <= MAX_CONFIG_BYTES else None


def stored(raw: object) -> BuildConfig | None:
    """The config column as read (JSON text, or null), checked again; None when unusable."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode()
    if not isinstance(raw, bytes):
        return None
    try:
        return msgspec.json.decode(raw, type=BuildConfig)
    except msgspec.DecodeError:
        return None


def _short(text: str | None) -> str | None:
    return None if text is None else text[:MAX_TEXT]


def _short_value(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list):
        return [str(item)[:MAX_TEXT] for item in value[:256]]
    return value
