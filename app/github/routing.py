"""A router for GitHub webhook events, gidgethub style: handlers registered per event and action.

`@router.on("push", view=events.Push)` registers a handler that receives `(context, push)`,
the payload decoded into its typed view. Routers compose (`Router(a, b)`), so each feature keeps
its own and the webhook edge joins them. Several handlers may take one event; they must not rely
on running in any order. Each returns a one-line outcome; the edge stores them joined.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from app.github.events import Envelope

C = TypeVar("C")
V = TypeVar("V")

NOT_HANDLED = "ignored: not handled"


@dataclass(frozen=True, slots=True)
class _Route(Generic[C]):
    view: type[Any]
    handler: Callable[[C, Any], Awaitable[str]]


class Router(Generic[C]):
    """Handlers by (event, action); an action of None takes every action of the event."""

    def __init__(self, *routers: Router[C]) -> None:
        self._routes: dict[tuple[str, str | None], list[_Route[C]]] = {}
        for router in routers:
            for key, routes in router._routes.items():
                self._routes.setdefault(key, []).extend(routes)

    def on(
        self, event: str, *actions: str, view: type[V]
    ) -> Callable[[Callable[[C, V], Awaitable[str]]], Callable[[C, V], Awaitable[str]]]:
        """Register a handler for `event` with any of `actions` (every action when none given)."""

        def register(
            handler: Callable[[C, V], Awaitable[str]],
        ) -> Callable[[C, V], Awaitable[str]]:
            for action in actions or (None,):
                self._routes.setdefault((event, action), []).append(_Route(view, handler))
            return handler

        return register

    def events(self) -> frozenset[str]:
        """Every event some handler takes (what the App must subscribe to)."""
        return frozenset(event for event, _ in self._routes)

    def handles(self, event: str, action: str | None) -> bool:
        return bool(self._find(event, action))

    def _find(self, event: str, action: str | None) -> list[_Route[C]]:
        found = list(self._routes.get((event, None), []))
        if action is not None:
            found += self._routes.get((event, action), [])
        return found

    async def dispatch(self, context: C, event: str, payload: bytes) -> str:
        """Run every handler of this delivery, each given its view; their outcomes, joined.

        The payload is decoded once per view type, whatever the number of handlers.
        """
        routes = self._find(event, msgspec.json.decode(payload, type=Envelope).action)
        if not routes:
            return NOT_HANDLED
        views: dict[type[Any], Any] = {}
        outcomes = []
        for route in routes:
            if route.view not in views:
                views[route.view] = msgspec.json.decode(payload, type=route.view)
            outcomes.append(await route.handler(context, views[route.view]))
        return "; ".join(outcomes)
