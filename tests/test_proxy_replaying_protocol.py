"""`ReplayingProtocol`: a remembered answer leaves without the ASGI app, as the app would send it.

The proxy runs under uvicorn in a thread, with the protocol and the options `scalemesh serve
proxy` gives it, on a deployment seeded as the builder leaves it. An ASGI wrapper counts the
requests that reach the app: a replayed answer must not be one of them, and must match what
the app sent for the same request, byte for byte but for the date. Raw sockets show what a
client library would hide: HTTP/1.0, pipelined requests, a large body.
"""

from __future__ import annotations

from app.settings import Settings
from proxy.asgi import ProxyApp
from proxy.replaying_protocol import SEPARATE_BODY_BYTES, find_replayer
from proxy.wire import header_block
from tests.support import replaying
from tests.support.proxy import INDEX, SCRIPT
from tests.support.replaying import (
    LARGE,
    Counting,
    ask,
    connection,
    read_answer,
    request,
    without_date,
)
from tests.support.servers import Serving
from tests.support.waiting import wait_until

# The shared fixture, bound here: pytest finds a fixture by its name in the test's module.
served = replaying.served


def test_a_repeated_request_is_answered_without_the_app_exactly_as_the_app_answered(
    served: tuple[Serving, Counting],
) -> None:
    serving, counting = served
    paths = ["/", "/assets/app-1a2b3c4d.js", "/data.bin", "/missing.html"]

    first = [ask(serving, request(path))[0] for path in paths]
    again = ask(serving, *[request(path) for path in paths])

    assert counting.requests == paths  # the second time, none reached the app
    assert [without_date(answer) for answer in again] == [without_date(a) for a in first]
    assert [answer[2] for answer in again[:3]] == [INDEX, SCRIPT, LARGE]
    assert len(LARGE) >= SEPARATE_BODY_BYTES
    assert again[3][0] == 404
    for _, headers, _ in again:
        assert headers[b"server"] == b"uvicorn"
        assert headers[b"date"]
        assert b"connection" not in headers  # kept alive: all four came on one connection


def test_a_replayed_head_has_the_headers_and_no_body(served: tuple[Serving, Counting]) -> None:
    serving, counting = served
    head = request("/assets/app-1a2b3c4d.js", "HEAD")
    (first,) = ask(serving, head, methods=("HEAD",))
    ask(serving, request("/"))

    again, after = ask(serving, head, request("/"), methods=("HEAD", "GET"))

    assert counting.requests == ["/assets/app-1a2b3c4d.js", "/"]
    assert without_date(again) == without_date(first)
    assert again[1][b"content-length"] == str(len(SCRIPT)).encode()
    assert again[2] == b""
    # Had a body been written after the HEAD's headers, it would be read as this answer.
    assert after[0] == 200
    assert after[2] == INDEX


def test_an_http_10_replay_says_close_and_closes(served: tuple[Serving, Counting]) -> None:
    serving, counting = served
    ask(serving, request("/"))

    with connection(serving) as (sock, stream):
        sock.sendall(request("/", version="1.0"))
        status, headers, body = read_answer(stream)
        rest = stream.read()

    assert counting.requests == ["/"]
    assert (status, body) == (200, INDEX)
    assert headers[b"connection"] == b"close"
    assert rest == b""  # the server closed the connection after the answer


def test_pipelined_requests_are_answered_in_order_around_one_the_app_answers(
    served: tuple[Serving, Counting],
) -> None:
    serving, counting = served
    ask(serving, request("/"))
    ask(serving, request("/data.bin"))

    answers = ask(serving, request("/"), request("/other-path.html"), request("/data.bin"))

    # The first is replayed at once. The miss goes to the app as a task, and the last, asked
    # while it runs, waits behind it in uvicorn's queue (the app replays it from there).
    assert counting.requests == ["/", "/data.bin", "/other-path.html", "/data.bin"]
    assert [(status, body) for status, _, body in answers][0::2] == [(200, INDEX), (200, LARGE)]
    assert answers[1][0] == 404


def test_a_client_that_stops_reading_gets_uvicorns_backpressure_not_a_growing_buffer(
    served: tuple[Serving, Counting],
) -> None:
    serving, counting = served
    ask(serving, request("/data.bin"))
    many = 200  # 20 MB of answers asked at once, more than the kernel's buffers hold

    with connection(serving) as (sock, stream):
        sock.sendall(request("/data.bin") * many)
        # Past uvicorn's high-water mark the protocol stops writing and hands the next
        # request to uvicorn, which waits for the client and stops reading the rest.
        wait_until(lambda: len(counting.requests) > 1, what="a request handed to uvicorn")
        answers = [read_answer(stream) for _ in range(many)]

    assert [(status, body) for status, _, body in answers] == [(200, LARGE)] * many
    handed_over = len(counting.requests) - 1
    assert 1 <= handed_over < many


def test_a_conditional_request_is_replayed_under_its_own_key(
    served: tuple[Serving, Counting],
) -> None:
    serving, counting = served
    ((_, headers, _),) = ask(serving, request("/"))
    etag = headers[b"etag"].decode()
    ask(serving, request("/", if_none_match=etag))

    answers = ask(serving, *[request("/", if_none_match=etag)] * 2, request("/"))

    assert counting.requests == ["/", "/"]
    assert [answer[0] for answer in answers] == [304, 304, 200]
    assert answers[1][2] == b""
    assert answers[2][2] == INDEX


def test_the_protocol_finds_the_proxy_only(settings: Settings) -> None:
    app = ProxyApp(settings)

    assert find_replayer(Counting(app)) is app
    assert find_replayer(object()) is None


def test_header_lines_are_encoded_once_or_left_to_uvicorn() -> None:
    sized = [(b"Content-Type", b"text/html"), (b"content-length", b"5")]

    assert header_block(200, sized) == b"content-type: text/html\r\ncontent-length: 5\r\n"
    assert header_block(304, [(b"etag", b'"x"')]) == b'etag: "x"\r\n'
    # No length (uvicorn would chunk), a header that changes the connection, a byte uvicorn
    # refuses: the app's path sends these, so uvicorn's own rules apply to them.
    assert header_block(200, [(b"content-type", b"text/html")]) is None
    assert header_block(200, [*sized, (b"connection", b"close")]) is None
    assert header_block(200, [*sized, (b"transfer-encoding", b"chunked")]) is None
    assert header_block(200, [*sized, (b"x-a", b"one\ntwo")]) is None
    assert header_block(200, [*sized, (b"x a", b"b")]) is None
