"""The client's HTTP calls to the API, with one-line errors for every way they can fail."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from app.client import ClientError
from app.client.config import config_path, load_config

HTTP_TIMEOUT_S = 30.0
PAGE = 100
"""Deployments per request when searching a project's history (the API's maximum)."""

EXPIRED = "your session expired; run scalemesh login"

T = TypeVar("T")


class Api:
    """The API at `base`, called with `token` (none only to log in)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base, headers=headers, timeout=HTTP_TIMEOUT_S)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int | list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """The answer when it succeeded (or its status is in `accept`); else `ClientError`."""
        try:
            response = self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ClientError(
                f"cannot reach the Scale Mesh API at {self.base} ({reason}); "
                "check the URL given to scalemesh login --api"
            ) from None
        if response.is_success or response.status_code in accept:
            return response
        if response.status_code == 401 and self.token:
            raise ClientError(EXPIRED)
        if response.status_code == 404 and not self.token:
            raise ClientError(
                f"there is no Scale Mesh API at {self.base} "
                f"({method} {path} answered 404); check --api"
            )
        detail = _detail(response)
        if detail is None:
            raise ClientError(
                f"{method} {path} answered {response.status_code} {response.reason_phrase}; "
                f"is {self.base} a Scale Mesh API?"
            )
        raise ClientError(detail)

    def json(self, method: str, path: str, **options: Any) -> Any:
        return self._decode(method, path, self.call(method, path, **options))

    def answer(self, kind: type[T], method: str, path: str, **options: Any) -> T:
        """The answer, read as `kind` (`app.client.answers`)."""
        return self._read(kind, method, path, self.json(method, path, **options))

    def _read(self, kind: type[T], method: str, path: str, data: Any) -> T:
        try:
            return msgspec.convert(data, kind)
        except msgspec.ValidationError as exc:
            raise ClientError(
                f"{method} {path} answered in a shape this client does not know ({exc}); "
                f"is {self.base} a Scale Mesh API?"
            ) from None

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{method} {path} did not answer with JSON; is {self.base} a Scale Mesh API?"
            ) from None

    def pages(self, kind: type[T], path: str) -> Iterator[T]:
        """Every item of a paginated list, following its `Link: rel="next"` headers."""
        url: str | None = path
        params: Mapping[str, int] | None = {"limit": PAGE}
        while url is not None:
            response = self.call("GET", url, params=params)
            items = self._read(list, "GET", url, self._decode("GET", url, response))
            yield from (self._read(kind, "GET", url, item) for item in items)
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries its own


def _detail(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) and detail else None


@contextlib.contextmanager
def session() -> Iterator[Api]:
    """The API the user logged in to, with their token."""
    config = load_config(config_path(os.environ))
    with Api(config.api, config.token) as api:
        yield api


def project_path(slug: str) -> str:
    return f"/projects/{quote(slug, safe='')}"


def deployment_path(deployment_id: str) -> str:
    return f"/deployments/{quote(deployment_id, safe='')}"
