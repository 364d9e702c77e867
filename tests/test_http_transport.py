"""The HTTP transport (SSE chat API), against real servers on loopback: the
request, statuses, the token refresh, and faults in the response.

The local server plays the API as MyShell does (with fault switches); the raw
server (tests/scripted_http.py) writes bytes, so it can stall, cut or corrupt a
response anywhere. ``helpers.call`` checks that no client thread or socket is
left after each call. RELIABILITY.md maps every case to its test.
"""

from __future__ import annotations

import threading

import pytest

from myshell_sync import (
    AuthenticationError,
    CaptchaRequiredError,
    ClientClosedError,
    ConnectionLostError,
    Myshell,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    RateLimitError,
    ServerError,
    Timeout,
    UnsupportedModelError,
    generate_header_timestamp,
)
from myshell_sync.local import LocalMyshellServer
from helpers import USER, call, client_sockets, client_threads, eventually, make_client, run_threads, user
from scripted_http import RawConn, RawServer, sse_event

# ---------------------------------------------------------------------------
# The local server: the request, statuses, the token refresh


def test_http_request_shape(local_server):
    with make_client(local_server, "http", token="tok-123", visitor_id="visitor-9") as client:
        list(client.generate("4738", user("shape")))
    seen = local_server.http_requests[-1]
    headers = seen["headers"]
    assert seen["json"] == {"botId": "4738", "conversation_scenario": 4, "message": "shape", "messageType": 1}
    assert headers["myshell-service-name"] == "organics-api"
    assert headers["visitor-id"] == "visitor-9"
    assert headers["platform"] == "web"
    assert headers["myshell-client-version"] == "v1.6.4"
    assert headers["authorization"] == "Bearer tok-123"
    assert generate_header_timestamp(int(headers["timestamp"])) == headers["timestamp"]


def test_http_needs_a_numeric_bot_id(local_server):
    with make_client(local_server, "http") as client:
        with pytest.raises(UnsupportedModelError, match="numeric id"):
            client.generate("gpt-4", user("x"))
    with make_client(local_server, "http", http_bot_ids={"gpt-4": "4738"}) as client:
        assert "".join(client.generate("gpt-4", user("mapped"))) == "assistant: mapped"


@pytest.mark.parametrize(
    "status, error, words",
    [
        (401, AuthenticationError, "token"),
        (429, RateLimitError, "429"),
        (403, CaptchaRequiredError, "browser challenge"),
        (500, ServerError, "500"),
        (502, ServerError, "502"),
    ],
)
def test_http_error_statuses(local_server, status, error, words):
    local_server.http_status = status
    with make_client(local_server, "http") as client:
        with pytest.raises(error) as info:
            list(client.generate("assistant", user("x")))
    assert words in str(info.value)
    if status == 429:
        assert info.value.retry_after == 2.0


def test_http_final_event_missing_still_ends_well(local_server):
    local_server.missing_replied = True
    with make_client(local_server, "http") as client:
        with client.stream("assistant", user("no final")) as stream:
            assert "".join(stream) == "assistant: no final"
    assert stream.message is None


def test_http_refreshed_token_replaces_the_client_token(local_server):
    local_server.refreshed_token = "fresh-token"
    with make_client(local_server, "http", token="old-token") as client:
        list(client.generate("assistant", user("x")))
        assert client.token == "fresh-token"
        list(client.generate("assistant", user("y")))
    assert local_server.http_requests[-1]["headers"]["authorization"] == "Bearer fresh-token"


# ---------------------------------------------------------------------------
# A raw server: the response stalls, ends early, or is not what it should be

HTTP = {"transport": "http"}


def _sse_reply_start(conn: RawConn, *, chunked: bool = True) -> None:
    conn.read_request()
    conn.send_sse_head(chunked=chunked)


def _send(conn: RawConn, data: bytes, chunked: bool) -> None:
    conn.send_chunk(data) if chunked else conn.send(data)


def test_http_headers_then_stall_times_out_and_leaves_nothing_behind():
    def play(conn):
        _sse_reply_start(conn)
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=3, first_chunk=0.5, idle=3), **HTTP)
    assert type(outcome.error) is MyshellTimeoutError and "first_chunk" in str(outcome.error)
    assert 0.5 <= outcome.elapsed < 1


def test_http_no_answer_at_all_times_out_and_leaves_nothing_behind():
    def play(conn):
        conn.read_request()
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=3, first_chunk=0.5, idle=30), **HTTP)
    assert type(outcome.error) is MyshellTimeoutError
    assert 0.5 <= outcome.elapsed < 1  # the thread awaiting the headers was cut at once


@pytest.mark.parametrize("how", ["first_chunk timeout", "client close"])
def test_http_thread_awaiting_the_headers_is_freed_without_a_read_timeout(how):
    # With idle=None requests has no read timeout: only cutting the socket
    # frees the reply's thread while the server sits on the request.
    requested = threading.Event()

    def play(conn):
        conn.read_request()
        requested.set()
        conn.stall()

    first_chunk = 0.3 if how == "first_chunk timeout" else None
    with RawServer(play) as server:
        client = Myshell(server.base_url, transport="http", captcha_delay=0, max_retries=0,
                         timeout=Timeout(connect=3, first_chunk=first_chunk, idle=None))
        errors = []
        waiter = threading.Thread(
            target=lambda: errors.append(pytest.raises(MyshellError, list, client.generate("assistant", USER))))
        waiter.start()
        assert requested.wait(5)
        if how == "client close":
            client.close()
        waiter.join(5)
        assert not waiter.is_alive()
        assert errors[0].type is (ClientClosedError if how == "client close" else MyshellTimeoutError)
        assert eventually(lambda: not client_threads(), 1), client_threads()
        client.close()
        assert client_sockets(server.port) == 0


def test_http_events_then_stall_is_an_idle_timeout_with_the_partial_text():
    def play(conn):
        _sse_reply_start(conn)
        conn.send_chunk(sse_event("TEXT", content="part "))
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=3, first_chunk=3, idle=0.4), **HTTP)
    assert type(outcome.error) is MyshellTimeoutError and "idle" in str(outcome.error)
    assert outcome.chunks == ["part "] and outcome.error.partial_text == "part "


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "connection-close"])
@pytest.mark.parametrize("tail", ["", "event: MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_TEXT\ndata: {\"content\":\"lost\"}"],
                         ids=["after an event", "inside an event"])
def test_http_stream_ending_before_the_final_events_is_connection_lost(chunked, tail):
    def play(conn):
        _sse_reply_start(conn, chunked=chunked)
        _send(conn, sse_event("TEXT", content="part ") + tail.encode(), chunked)
        if chunked:
            conn.end_chunks()
        conn.kill()

    outcome = call(play, **HTTP)
    assert type(outcome.error) is ConnectionLostError, outcome.error
    assert outcome.chunks == ["part "]  # an unfinished event is never yielded
    assert outcome.elapsed < 1


def test_http_push_finished_then_eof_ends_well():
    # The final REPLIED event is missing but TEXT_STREAM_PUSH_FINISHED came.
    def play(conn):
        _sse_reply_start(conn, chunked=False)
        conn.send(sse_event("TEXT", content="all ") + sse_event("TEXT", content="there")
                  + sse_event("TEXT_STREAM_PUSH_FINISHED", content=""))
        conn.kill()

    outcome = call(play, **HTTP)
    assert outcome.error is None and outcome.chunks == ["all ", "there"]


def test_http_tcp_reset_mid_stream_is_connection_lost():
    def play(conn):
        _sse_reply_start(conn)
        conn.send_chunk(sse_event("TEXT", content="part "))
        conn.send(b"40\r\nevent: MESS")
        conn.reset()

    outcome = call(play, **HTTP)
    assert type(outcome.error) is ConnectionLostError
    assert outcome.error.partial_text == "part "


@pytest.mark.parametrize(
    "body, error, match",
    [
        # U+FFFD replaces the bad byte (WHATWG), so the TEXT event's data is not JSON.
        (b"event: MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_TEXT\ndata: \xff\n\n", ProtocolError, "not JSON"),
        # The cut character ends an unfinished event, which is dropped.
        ("data: 好".encode()[:-1], ConnectionLostError, "before the reply was complete"),
    ],
    ids=["invalid UTF-8", "truncated UTF-8 at EOF"],
)
def test_http_stream_that_is_not_utf8_is_decoded_with_replacement(body, error, match):
    # (The bytes come in a read of their own: events decoded in the same read
    # as invalid UTF-8 are not delivered, see RELIABILITY.md.)
    yielded = threading.Event()

    def play(conn):
        _sse_reply_start(conn, chunked=False)
        conn.send(sse_event("TEXT", content="part "))
        assert yielded.wait(5)
        conn.send(body)
        conn.kill()

    outcome = call(play, on_chunk=lambda chunk: yielded.set(), **HTTP)
    assert type(outcome.error) is error and match in str(outcome.error)
    assert outcome.chunks == ["part "]


@pytest.mark.parametrize("terminated", [True, False], ids=["whole line", "unfinished line"])
def test_http_event_over_the_limit_is_a_protocol_error(terminated):
    def play(conn):
        _sse_reply_start(conn)
        conn.send_chunk(sse_event("TEXT", content="part "))
        line = b"data: " + b"x" * 200_000 + (b"\n\n" if terminated else b"")
        for start in range(0, len(line), 16384):
            conn.send_chunk(line[start:start + 16384])
        conn.stall()

    outcome = call(play, max_event_size=65536, **HTTP)
    assert type(outcome.error) is ProtocolError and "65536" in str(outcome.error)
    assert outcome.chunks == ["part "]
    assert outcome.elapsed < 1


def test_http_broken_chunked_encoding_fails_the_reply():
    def play(conn):
        _sse_reply_start(conn)
        conn.send_chunk(sse_event("TEXT", content="part "))
        conn.send(b"zz\r\ngarbage\r\n")
        conn.stall()

    outcome = call(play, **HTTP)
    assert type(outcome.error) is ConnectionLostError, outcome.error
    assert outcome.error.partial_text == "part "
    assert outcome.elapsed < 1


def test_http_endless_response_headers_fail_fast():
    def play(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n")
        for i in range(2000):
            conn.send(b"X-Header-%d: value\r\n" % i)
        conn.stall()

    outcome = call(play, **HTTP)
    assert type(outcome.error) is ConnectionLostError, outcome.error  # http.client: "got more than 100 headers"
    assert outcome.elapsed < 1


def test_http_error_status_reads_only_a_bounded_body():
    def play(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000000\r\n\r\n")
        conn.send(b"x" * 1_000_000)  # far more than the client reads, then silence
        conn.stall()

    outcome = call(play, **HTTP)
    assert type(outcome.error) is ServerError and "500" in str(outcome.error)
    assert len(str(outcome.error)) < 500
    assert outcome.elapsed < 1


# ---------------------------------------------------------------------------
# Pooled keep-alive connections


def test_http_replies_sharing_pooled_connections_never_cut_each_other():
    # Each reply's cleanup used to close its response from the caller's
    # thread, racing with the pool lending that connection to the next
    # reply: about 1 call in 20 failed with ConnectionLostError(ResponseNotReady).
    errors: list = []
    done: list = []

    def worker(n: int) -> None:
        for k in range(25):
            try:
                text = "".join(client.generate("assistant", [{"role": "user", "content": f"t{n} c{k}"}]))
                assert text == f"assistant: t{n} c{k}"
                done.append(text)
            except Exception as exc:  # reported below
                errors.append(exc)

    with LocalMyshellServer(chunk_delay=0.002) as server:
        with Myshell(server.base_url, transport="http", captcha_delay=0, timeout=10, max_connections=4) as client:
            run_threads([threading.Thread(target=worker, args=(n,)) for n in range(16)], 60)
    assert errors == [] and len(done) == 400
