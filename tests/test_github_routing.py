"""The webhook router: handlers per event and action, composed routers, one decode per view."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from app.github import events
from app.github.routing import NOT_HANDLED, Router

pytestmark = pytest.mark.anyio


class Counted(msgspec.Struct):
    """A view that counts how often a payload is decoded into it."""

    action: str | None = None

    decoded = 0

    def __post_init__(self) -> None:
        Counted.decoded += 1


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


async def test_a_handler_gets_its_view_and_every_action_when_none_is_named() -> None:
    router: Router[list[str]] = Router()
    seen: list[Any] = []

    @router.on("push", view=events.Envelope)
    async def any_push(context: list[str], push: events.Envelope) -> str:
        seen.append((context, push))
        return "pushed"

    outcome = await router.dispatch(["ctx"], "push", body(action="whatever"))

    assert outcome == "pushed"
    assert seen == [(["ctx"], events.Envelope(action="whatever"))]
    assert router.handles("push", None)
    assert router.handles("push", "anything")
    assert await router.dispatch(["ctx"], "star", body()) == NOT_HANDLED
    assert not router.handles("star", None)


async def test_composed_routers_run_every_handler_of_an_event_decoding_each_view_once() -> None:
    first: Router[None] = Router()
    second: Router[None] = Router()

    @first.on("pull_request", "opened", view=Counted)
    async def deploy(context: None, event: Counted) -> str:
        return f"deployed ({event.action})"

    @second.on("pull_request", view=Counted)
    async def label(context: None, event: Counted) -> str:
        return "labelled"

    @second.on("pull_request", "closed", view=Counted)
    async def retire(context: None, event: Counted) -> str:
        return "retired"

    both = Router(first, second)
    Counted.decoded = 0

    outcome = await both.dispatch(None, "pull_request", body(action="opened"))

    assert sorted(outcome.split("; ")) == ["deployed (opened)", "labelled"]
    assert Counted.decoded == 1
    assert both.events() == frozenset({"pull_request"})
    assert await both.dispatch(None, "pull_request", body(action="closed")) in (
        "labelled; retired",
        "retired; labelled",
    )
    # Each router keeps its own handlers: composing copied them.
    assert await first.dispatch(None, "pull_request", body(action="closed")) == NOT_HANDLED
