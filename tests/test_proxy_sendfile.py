"""Large replayed answers leave by sendfile(2), and come out exactly as written from memory.

`ReplayingProtocol` sends the headers, then asks the kernel to send the file's bytes; what the
socket does not take follows from memory through the transport. The tests spy on
`os.sendfile` and on socket sends, to make the kernel take less than asked, and check each
answer byte for byte on a raw socket: partial sends, a full socket, an answer still queued,
HTTP/1.0, and TLS, where sendfile would bypass the encryption and must never be used.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support import replaying
from tests.support.ports import LOOPBACK
from tests.support.protection import BRANCH_HOST, cookie, protect
from tests.support.proxy import INDEX
from tests.support.replaying import (
    HOST,
    LARGE,
    RIVAL_HOST,
    RIVAL_LARGE,
    Answer,
    Counting,
    ask,
    connection,
    read_answer,
    request,
    seed_rival,
    seed_with_large,
    serving_after,
    without_date,
)
from tests.support.servers import Serving
from tests.support.tls import client_context, self_signed
from tests.support.waiting import wait_until

served = replaying.served


class Sendfiles:
    """`os.sendfile`, recording each call's count and what it sent (None: it raised).

    `take`: the share of each count the kernel is let take; none: the socket is full."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, take: float = 1.0) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self._real = os.sendfile
        self._take = take
        monkeypatch.setattr(os, "sendfile", self)

    def __call__(self, out_fd: int, in_fd: int, offset: int, count: int) -> int:
        if not self._take:
            self.calls.append((count, None))
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        sent = self._real(out_fd, in_fd, offset, int(count * self._take))
        self.calls.append((count, sent))
        return sent


def short_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket send on this process takes at most 100 bytes (a full socket's share): the
    headers of a large answer (more than 200 bytes) are sent only partly."""
    real_send = socket.socket.send

    def short_send(sock: socket.socket, data: bytes, flags: int = 0) -> int:
        return real_send(sock, data[:100], flags)

    monkeypatch.setattr(socket.socket, "send", short_send)


def wait_open(counting: Counting) -> None:
    """Wait until the proxy has data.bin's file open (it opens it after answering)."""
    proxy = counting.app.proxy
    wait_until(lambda: len(proxy.files) == 1, what="data.bin opened for sendfile")


def opened(serving: Serving, counting: Counting) -> Answer:
    """Ask for data.bin once and `wait_open`; the answer the app gave."""
    (answer,) = ask(serving, request("/data.bin"))
    wait_open(counting)
    return answer


def test_a_large_file_is_replayed_by_sendfile_byte_for_byte(
    served: tuple[Serving, Counting], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, counting = served
    first = opened(serving, counting)
    ask(serving, request("/data.bin", "HEAD"), methods=("HEAD",))
    sendfiles = Sendfiles(monkeypatch)

    alone = ask(serving, request("/data.bin"))
    again = ask(
        serving,
        request("/data.bin"),
        request("/data.bin", "HEAD"),
        request("/data.bin"),
        methods=("GET", "HEAD", "GET"),
    )

    assert counting.requests == ["/data.bin"] * 2  # the first GET and the first HEAD
    replayed = [*alone, *again[::2]]
    assert [without_date(answer) for answer in replayed] == [without_date(first)] * 3
    assert first[2] == LARGE
    assert again[1][2] == b""  # HEAD: no body, so the next answer parsed whole
    # A connection's first answer goes by sendfile; a later one too, unless the answer before
    # it is still queued (then from memory, behind it).
    assert 2 <= len(sendfiles.calls) <= 3
    assert all(count == len(LARGE) and sent for count, sent in sendfiles.calls)


@pytest.mark.parametrize("take", [0.3, 0.0], ids=["partly", "not-at-all"])
def test_what_sendfile_does_not_take_follows_from_memory(
    served: tuple[Serving, Counting], monkeypatch: pytest.MonkeyPatch, take: float
) -> None:
    serving, counting = served
    opened(serving, counting)
    sendfiles = Sendfiles(monkeypatch, take)

    answers = ask(serving, *[request("/data.bin"), request("/")] * 3)

    assert [(status, body) for status, _, body in answers] == [(200, LARGE), (200, INDEX)] * 3
    assert sendfiles.calls  # the kernel was asked, and the answers still came out whole
    assert all(sent is None or sent < count for count, sent in sendfiles.calls)


def test_headers_the_socket_takes_only_partly_are_followed_by_the_rest(
    served: tuple[Serving, Counting], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, counting = served
    opened(serving, counting)
    short_sends(monkeypatch)
    sendfiles = Sendfiles(monkeypatch)

    answers = ask(serving, request("/data.bin"), request("/data.bin"))

    assert [(status, body) for status, _, body in answers] == [(200, LARGE)] * 2
    assert sendfiles.calls == []  # the body went after the rest of the headers, in order


def test_headers_the_socket_refuses_are_written_through_the_transport(
    served: tuple[Serving, Counting], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, counting = served
    opened(serving, counting)
    real_send = socket.socket.send

    def full_for_headers(sock: socket.socket, data: bytes, flags: int = 0) -> int:
        if flags & socket.MSG_MORE:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_send(sock, data, flags)

    monkeypatch.setattr(socket.socket, "send", full_for_headers)
    sendfiles = Sendfiles(monkeypatch)

    answers = ask(serving, request("/data.bin"), request("/data.bin"))

    assert [(status, body) for status, _, body in answers] == [(200, LARGE)] * 2
    assert counting.requests == ["/data.bin"]
    assert sendfiles.calls == []


def test_a_large_file_waits_behind_an_answer_still_queued(
    served: tuple[Serving, Counting], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, counting = served
    ask(serving, request("/"))
    opened(serving, counting)
    # The transport's writes are short too: "/"'s answer is still queued (below the
    # high-water mark, so writing is not paused) when data.bin's is due.
    short_sends(monkeypatch)
    sendfiles = Sendfiles(monkeypatch)

    answers = ask(serving, request("/"), request("/data.bin"))

    assert [(status, body) for status, _, body in answers] == [(200, INDEX), (200, LARGE)]
    assert counting.requests == ["/", "/data.bin"]  # both replayed, in order
    assert sendfiles.calls == []


def test_an_http_10_large_replay_is_sent_whole_and_then_closed(
    served: tuple[Serving, Counting], monkeypatch: pytest.MonkeyPatch
) -> None:
    serving, counting = served
    opened(serving, counting)
    sendfiles = Sendfiles(monkeypatch)

    with connection(serving) as (sock, stream):
        sock.sendall(request("/data.bin", version="1.0"))
        status, headers, body = read_answer(stream)
        rest = stream.read()

    assert (status, body, rest) == (200, LARGE, b"")
    assert headers[b"connection"] == b"close"
    assert [sent for _, sent in sendfiles.calls] == [len(LARGE)]


def test_over_tls_a_large_file_goes_through_the_transport_never_past_it(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sendfile would put the file's plain bytes inside the TLS stream.
    cert, key = self_signed(tmp_path)
    tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    context = client_context(cert)
    prepare = functools.partial(seed_with_large, settings)

    with serving_after(settings, prepare, **tls) as (serving, counting):

        def ask_tls(times: int) -> list[Answer]:
            with (
                socket.create_connection((LOOPBACK, serving.port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=LOOPBACK) as sock,
                sock.makefile("rb") as stream,
            ):
                sock.sendall(request("/data.bin") * times)
                return [read_answer(stream) for _ in range(times)]

        ask_tls(1)
        wait_open(counting)
        sendfiles = Sendfiles(monkeypatch)
        answers = ask_tls(2)

    assert [(status, body) for status, _, body in answers] == [(200, LARGE)] * 2
    assert counting.requests == ["/data.bin"]  # replayed, through the TLS transport
    assert sendfiles.calls == []


# --- what one tenant can reach through another's files ----------------------------------


async def _with_a_rival(settings: Settings) -> None:
    await seed_with_large(settings)
    await seed_rival(settings)


def test_each_tenant_is_sent_its_own_file_however_alike_their_paths(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same path, same size, other bytes: a descriptor found by path or size alone would
    # send one tenant's file to the other's visitors.
    hosts = (HOST.decode(), RIVAL_HOST)
    with serving_after(settings, functools.partial(_with_a_rival, settings)) as (serving, counting):
        first = [ask(serving, request("/data.bin", host=host))[0] for host in hosts]
        proxy = counting.app.proxy
        wait_until(lambda: len(proxy.files) == 2, what="both files opened for sendfile")
        sendfiles = Sendfiles(monkeypatch)
        # In both orders: whichever was sent last, each host still gets its own.
        both_orders = (*hosts, *reversed(hosts))
        again = [ask(serving, request("/data.bin", host=host))[0] for host in both_orders]

    assert [body for _, _, body in first] == [LARGE, RIVAL_LARGE]
    expected = [without_date(answer) for answer in (*first, *reversed(first))]
    assert [without_date(answer) for answer in again] == expected
    assert counting.requests == ["/data.bin"] * 2
    assert len(sendfiles.calls) == 4


async def _protected(settings: Settings) -> None:
    await protect(await seed_with_large(settings), "previews")


def test_a_protected_file_is_never_sent_without_its_cookie(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = request("/data.bin", host=BRANCH_HOST, cookie=cookie())
    anonymous = request("/data.bin", host=BRANCH_HOST)
    with serving_after(settings, functools.partial(_protected, settings)) as (serving, counting):
        (opened_with_cookie,) = ask(serving, signed)
        wait_open(counting)
        sendfiles = Sendfiles(monkeypatch)
        refused = ask(serving, anonymous, anonymous)
        (again,) = ask(serving, signed)

    assert (opened_with_cookie[0], opened_with_cookie[2]) == (200, LARGE)
    assert [(status, LARGE in body) for status, _, body in refused] == [(302, False)] * 2
    assert (again[0], again[2]) == (200, LARGE)
    assert [count for count, _ in sendfiles.calls] == [len(LARGE)]  # the signed one alone
