"""The HTTP transport (SSE chat API), against real servers on loopback: the
request, statuses, the token refresh, and faults in the response.

The local server plays the API as MyShell does (with fault switches); the raw
server (tests/scripted_http.py) writes bytes, so it can stall, cut or corrupt a
response anywhere. ``helpers.call`` checks that no client thread or socket is
left after each call. RELIABILITY.md maps every case to its test.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from typing import Callable

import pytest
from helpers import (
    USER,
    call,
    client_sockets,
    client_threads,
    eventually,
    make_client,
    run_threads,
    user,
)
from scripted_http import RawConn, RawServer, sse_event

from myshell_sync import (
    AuthenticationError,
    BadRequestError,
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
from myshell_sync.local import LocalMyshellServer, reply_chunks

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

    outcome = call(play, timeout=Timeout(connect=30, first_chunk=0.5, idle=30), **HTTP)
    assert type(outcome.error) is MyshellTimeoutError and "first_chunk" in str(outcome.error)
    assert 0.5 <= outcome.elapsed < 10  # Timeout.first_chunk, not the 30 s read timeout


def test_http_no_answer_at_all_times_out_and_leaves_nothing_behind():
    def play(conn):
        conn.read_request()
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=30, first_chunk=0.5, idle=30), **HTTP)
    assert type(outcome.error) is MyshellTimeoutError
    assert 0.5 <= outcome.elapsed < 10  # Timeout.first_chunk, not the 30 s read timeout
    # The thread awaiting the headers was cut at once: it was gone when the
    # error reached the caller (left to its read timeout, the caller would
    # have waited out a bounded join and found it still running).
    assert outcome.threads_at_end == []


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
        client = Myshell(
            server.base_url,
            transport="http",
            captcha_delay=0,
            max_retries=0,
            timeout=Timeout(connect=3, first_chunk=first_chunk, idle=None),
        )
        errors = []
        waiter = threading.Thread(
            target=lambda: errors.append(pytest.raises(MyshellError, list, client.generate("assistant", USER)))
        )
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
@pytest.mark.parametrize(
    "tail",
    ["", 'event: MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_TEXT\ndata: {"content":"lost"}'],
    ids=["after an event", "inside an event"],
)
def test_http_stream_ending_before_the_final_events_is_connection_lost(chunked, tail):
    def play(conn):
        _sse_reply_start(conn, chunked=chunked)
        _send(conn, sse_event("TEXT", content="part ") + tail.encode(), chunked)
        if chunked:
            conn.end_chunks()
        conn.kill()

    outcome = call(play, timeout=30, **HTTP)
    assert type(outcome.error) is ConnectionLostError, outcome.error
    assert outcome.chunks == ["part "]  # an unfinished event is never yielded
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_http_push_finished_then_eof_ends_well():
    # The final REPLIED event is missing but TEXT_STREAM_PUSH_FINISHED came.
    def play(conn):
        _sse_reply_start(conn, chunked=False)
        conn.send(
            sse_event("TEXT", content="all ")
            + sse_event("TEXT", content="there")
            + sse_event("TEXT_STREAM_PUSH_FINISHED", content="")
        )
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
            conn.send_chunk(line[start : start + 16384])
        conn.stall()

    outcome = call(play, timeout=30, max_event_size=65536, **HTTP)
    assert type(outcome.error) is ProtocolError and "65536" in str(outcome.error)
    assert outcome.chunks == ["part "]
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_http_broken_chunked_encoding_fails_the_reply():
    def play(conn):
        _sse_reply_start(conn)
        conn.send_chunk(sse_event("TEXT", content="part "))
        conn.send(b"zz\r\ngarbage\r\n")
        conn.stall()

    outcome = call(play, timeout=30, **HTTP)
    assert type(outcome.error) is ConnectionLostError, outcome.error
    assert outcome.error.partial_text == "part "
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_http_endless_response_headers_fail_fast():
    def play(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\n")
        for i in range(2000):
            conn.send(b"X-Header-%d: value\r\n" % i)
        conn.stall()

    outcome = call(play, timeout=30, **HTTP)
    assert type(outcome.error) is ConnectionLostError, outcome.error  # http.client: "got more than 100 headers"
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_http_error_status_reads_only_a_bounded_body():
    def play(conn):
        conn.read_request()
        conn.send(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
        conn.send(b"x" * 1_000_000)  # far more than the client reads, then silence
        conn.stall()

    outcome = call(play, timeout=30, **HTTP)
    assert type(outcome.error) is ServerError and "500" in str(outcome.error)
    assert len(str(outcome.error)) < 500
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


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


# ---------------------------------------------------------------------------
# Lifecycle and body (issue 10 regressions): fork safety, close racing start,
# reading to the end, skipped events, statuses


MODEL = "4738"  # the local server's (and the scripted server's) HTTP bot
ENERGY = {"energy": 41, "dailyEnergy": 200}


def http_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("myshell-http-")]


def no_http_threads(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    for thread in http_threads():
        thread.join(max(deadline - time.monotonic(), 0))
    return not http_threads()


# -- the scripted SSE server -----------------------------------------------------


def reply_body(text: str, *, after: bytes = b"") -> bytes:
    """A whole MyShell reply to ``text`` (``after`` follows REPLIED)."""
    words = [w + " " for w in text.split(" ")]
    words[-1] = words[-1][:-1]
    return (
        b"".join(sse_event("TEXT", content=w) for w in words)
        + sse_event("TEXT_STREAM_PUSH_FINISHED", content="")
        + sse_event("USER_SENT_MESSAGE_REPLIED", message={"text": text, "type": "REPLY"})
        + after
    )


def keep_alive(answer: Callable[[RawConn, str], None]) -> Callable[[RawConn], None]:
    """A handler answering every request of a connection (keep-alive) with
    ``answer(conn, message)``; it ends when the client closes."""

    def handler(conn: RawConn) -> None:
        while True:
            _, _, _, body = conn.read_request(timeout=30)
            answer(conn, json.loads(body)["message"])

    return handler


def chunked(events: bytes) -> Callable[[RawConn, str], None]:
    def answer(conn: RawConn, message: str) -> None:
        conn.send_sse_head()
        conn.send_chunk(events)
        conn.end_chunks()

    return answer


# -- bug 1: fork safety ---------------------------------------------------------------


def wait_child(pid: int, timeout: float = 20.0) -> int:
    """The child's exit code; kills it (and fails) if it hangs."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        pause.wait(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_closing_the_client_leaves_the_parents_http_stream_alive():
    # Bug 1: the child's close() (what its finaliser runs at exit) shut down
    # the inherited socket of the parent's reply: ConnectionLostError.
    prompt = "one two three four five six"
    with LocalMyshellServer(chunk_delay=0.2) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            stream = client.stream(MODEL, user(prompt))
            first = next(stream)
            pid = os.fork()
            if pid == 0:  # the child: never return into pytest
                code = 1
                try:
                    client.close()
                    code = 0
                finally:
                    os._exit(code)
            assert wait_child(pid) == 0
            text = first + "".join(stream)
            assert text == "".join(reply_chunks("assistant", prompt))
            assert stream.message["text"] == text
        assert server.wait_for(lambda s: s.open_http_streams == 0, 5)
        assert server.http_cancelled == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_makes_its_own_http_call_on_its_own_connection():
    # Bug 1: the child took the parent's idle pooled connection (one socket
    # shared by two processes); it must open its own.
    release = threading.Event()
    served: list[tuple[int, str]] = []  # (connection number, message)
    conns: list[RawConn] = []

    def answer(conn: RawConn, message: str) -> None:
        if conn not in conns:
            conns.append(conn)
        served.append((conns.index(conn), message))
        if message == "slow":
            conn.send_sse_head()
            conn.send_chunk(sse_event("TEXT", content="first "))
            release.wait(10)
            conn.send_chunk(reply_body("first second")[len(sse_event("TEXT", content="first ")) :])
            conn.end_chunks()
        else:  # Content-Length framing: reusable even by a client that stops at REPLIED
            body = reply_body(f"re {message}")
            conn.send(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )

    with RawServer(keep_alive(answer)) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            stream = client.stream(MODEL, user("slow"))
            assert next(stream) == "first "  # connection 0, in flight
            assert client.chat(MODEL, user("p1")).text == "re p1"  # connection 1, idle now
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.write(write_end, client.chat(MODEL, user("child")).text.encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as pipe:
                child_text = pipe.read().decode()
            assert wait_child(pid) == 0
            assert child_text == "re child"
            release.set()
            assert "".join(stream) == "second"
            assert client.chat(MODEL, user("p2")).text == "re p2"
        by_conn = {}
        for index, message in served:
            by_conn.setdefault(index, []).append(message)
        (child_conn,) = [i for i, messages in by_conn.items() if "child" in messages]
        assert by_conn[child_conn] == ["child"], by_conn  # no parent request shared it
    assert not server.errors, server.errors


# -- bug 2: start()/close() race, and close() closing everything ---------------------


def test_close_racing_the_first_http_call_never_raises():
    # Bug 2: close() concurrent with start() could join the reply's thread
    # before it started: RuntimeError("cannot join thread before it is started").
    unexpected: list[BaseException] = []
    rounds = 300
    with LocalMyshellServer() as server:
        for i in range(rounds):
            client = Myshell(server.base_url, transport="http", timeout=5, close_timeout=2)
            _race_start_and_close(client, i, unexpected)
            if unexpected:
                break
            assert client.closed
    assert not unexpected, f"round {i}: {unexpected[0]!r}"
    assert no_http_threads(), http_threads()
    assert client_sockets(server.port) == 0


def _race_start_and_close(client: Myshell, i: int, unexpected: list[BaseException]) -> None:
    """One round: generate() and close() from two threads released together."""
    barrier = threading.Barrier(2)
    mode = i % 3

    def race() -> None:
        barrier.wait()
        try:
            chunks = client.generate(MODEL, user(f"race {i}"))
            try:
                next(chunks)
            finally:
                chunks.close()
        except (StopIteration, MyshellError):
            pass  # ClientClosedError mostly; a chunk or the end is fine too
        except BaseException as exc:
            unexpected.append(exc)

    def close() -> None:
        barrier.wait()
        if mode == 1:  # close the moment the reply's thread is being started
            until = time.monotonic() + 1
            while not http_threads() and time.monotonic() < until:
                pass
        elif mode == 2:
            time.sleep(random.random() / 500)
        try:
            client.close()
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=race), threading.Thread(target=close)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def _http_transport_class():
    try:
        from myshell_sync.transports.http import HttpTransport
    except ImportError:  # the layout before the fix
        from myshell_sync._http import HttpTransport  # type: ignore[no-redef]
    return HttpTransport


def test_close_closes_every_resource_even_when_one_fails(monkeypatch, caplog):
    # Bug 2: Myshell.close() stopped at the first part that failed (and
    # raised): the WebSocket connections and the session stayed open.
    def broken_close(self, *args, **kwargs):
        raise RuntimeError("simulated failure closing the HTTP transport")

    with LocalMyshellServer() as server:
        client = Myshell(server.base_url, transport="auto", captcha_delay=0, timeout=10)
        try:
            assert client.chat("gpt-4", user("ws")).text == "gpt-4: ws"  # a WebSocket connection
            assert client.chat(MODEL, user("http")).text == "assistant: http"  # a pooled HTTP one
            assert server.active_sids  # the WebSocket connection is open
            monkeypatch.setattr(_http_transport_class(), "close", broken_close)
            with caplog.at_level(logging.ERROR, logger="myshell_sync"):
                client.close()  # must not raise
        finally:
            monkeypatch.undo()
            client.close()
        assert client.closed
        assert server.wait_for(lambda s: not s.active_sids, 5)  # the WebSocket side closed
        assert eventually(lambda: client_sockets(server.port) == 0)  # the session's socket too
        failures = [r for r in caplog.records if r.exc_info and "simulated failure" in str(r.exc_info[1])]
        assert failures, "the failure was not logged"
        with pytest.raises(ClientClosedError):
            client.chat(MODEL, user("after"))


# -- bug 6: the reply is read to the end of the body --------------------------------


def test_http_reply_sees_the_trailing_energy_event():
    # Bug 6: the reply stopped reading at REPLIED, so USER_CONSUMED_ENERGY
    # (which follows it) was never seen and energy_info stayed None.
    with LocalMyshellServer(energy=100) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            assert client.chat(MODEL, user("hi")).text == "assistant: hi"
            assert client.energy_info == {"energy": 99, "dailyEnergy": 200}


def test_energy_event_in_the_same_read_as_replied_is_seen():
    # Bug 6: an event parsed from the same block as REPLIED was dropped.
    events = reply_body("all at once", after=sse_event("USER_CONSUMED_ENERGY", userEnergyInfo=ENERGY))
    with RawServer(keep_alive(chunked(events))) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            assert client.chat(MODEL, user("x")).text == "all at once"
            assert client.energy_info == ENERGY
    assert not server.errors, server.errors


def test_sequential_http_chats_reuse_one_connection():
    # Bug 6: the body was left unread after REPLIED (the trailing event and
    # the chunked terminator), so each call cost a new TCP connection.
    def answer(conn: RawConn, message: str) -> None:
        conn.send_sse_head()
        conn.send_chunk(reply_body(f"re {message}"))
        conn.send_chunk(sse_event("USER_CONSUMED_ENERGY", userEnergyInfo=ENERGY))
        conn.end_chunks()

    with RawServer(keep_alive(answer)) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            for i in range(5):
                assert client.chat(MODEL, user(str(i))).text == f"re {i}"
            assert client.energy_info == ENERGY
            assert len(server.conns) == 1
    assert not server.errors, server.errors


def test_http_keep_alive_with_the_local_server():
    # Bug 6: 5 chats, 1 connection (the client's socket stays the same one).
    with LocalMyshellServer(energy=100) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            ports = set()
            for i in range(5):
                assert client.chat(MODEL, user(str(i))).text == f"assistant: {i}"
                ports |= _client_ports(server.port)
            assert len(ports) == 1, ports
            assert client.energy_info == {"energy": 95, "dailyEnergy": 200}


def _client_ports(server_port: int) -> set:
    """Local ports of this process's established TCP connections to ``server_port``."""
    ports = set()
    with open("/proc/net/tcp") as f:
        for row in f.read().splitlines()[1:]:
            fields = row.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(remote.rsplit(":", 1)[1], 16) == server_port and state == "01":
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("tail", ["flood", "trickle", "stall"])
def test_reply_ends_promptly_whatever_follows_it(tail):
    # Bug 6: the trailing event is seen, yet reading the end of the body is
    # bounded: a server that floods (more than the drain bound), trickles or
    # stalls after the reply still hands the caller the whole reply promptly.
    stop = threading.Event()

    def answer(conn: RawConn, message: str) -> None:
        conn.send_sse_head()
        conn.send_chunk(reply_body("done now"))
        conn.send_chunk(sse_event("USER_CONSUMED_ENERGY", userEnergyInfo=ENERGY))
        if tail == "flood":
            junk = b"event: ping\ndata: keepalive\n\n" * 200
            while not stop.is_set():
                conn.send_chunk(junk)
        elif tail == "trickle":
            while not stop.wait(0.05):
                conn.send_chunk(b": still here\n")
        else:
            stop.wait(30)

    with RawServer(keep_alive(answer)) as server:
        with Myshell(server.base_url, transport="http", timeout=30) as client:
            started = time.monotonic()
            reply = client.chat(MODEL, user("x"))
            elapsed = time.monotonic() - started
            stop.set()
            assert reply.text == "done now"
            assert client.energy_info == ENERGY
            # the drain's bound (FINAL_GRACE, 1 s), not forever nor the 30 s read timeout
            assert elapsed < 10, elapsed
        assert no_http_threads()
        assert client_sockets(server.port) == 0


# -- bug 11: SSE events the client does not consume -------------------------------


@pytest.mark.parametrize(
    "interloper",
    [b"event: ping\ndata: keepalive\n\n", b"data: hello\n\n", b"event: weird\ndata: {not json\n\n"],
    ids=["ping", "unnamed", "unknown"],
)
def test_unconsumed_sse_event_with_non_json_data_is_skipped(interloper):
    # Bug 11: every event but two was parsed as JSON: ProtocolError.
    events = (
        sse_event("TEXT", content="one ")
        + interloper
        + sse_event("TEXT", content="two")
        + interloper
        + sse_event("TEXT_STREAM_PUSH_FINISHED", content="")
        + sse_event("USER_SENT_MESSAGE_REPLIED", message={"text": "one two"})
    )
    with RawServer(keep_alive(chunked(events))) as server:
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            assert list(client.generate(MODEL, user("x"))) == ["one ", "two"]
    assert not server.errors, server.errors


# -- bug 16: HTTP errors keep their status ------------------------------------------

TOKEN = "tok-SECRET-0123456789"


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, BadRequestError),
        (404, BadRequestError),
        (413, BadRequestError),
        (500, ServerError),
        (503, ServerError),
        (401, AuthenticationError),
        (429, RateLimitError),
    ],
)
def test_http_error_keeps_its_status_and_a_masked_bounded_body(status, cls):
    # Bug 16: an unmapped 4xx was a ServerError, and no error kept its
    # status or body; the server echoing the token must not leak it.
    def answer(conn: RawConn, message: str) -> None:
        headers = conn.request_head.decode("latin-1")
        echoed = headers.split("Authorization: ", 1)[1].split("\r\n", 1)[0]  # "Bearer <token>"
        body = json.dumps(
            {"reason": "ERROR_REASON_SIMULATED", "message": f"refused {echoed}", "pad": "x" * 20000}
        ).encode()
        extra = b"Retry-After: 7\r\n" if status == 429 else b""
        conn.send(
            b"HTTP/1.1 %d Nope\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
            % (status, extra, len(body), body)
        )

    with RawServer(keep_alive(answer)) as server:
        with Myshell(server.base_url, transport="http", token=TOKEN, timeout=10, max_retries=0) as client:
            with pytest.raises(MyshellError) as caught:
                client.chat(MODEL, user("x"))
    error = caught.value
    assert type(error) is cls, f"HTTP {status} gave {error!r}"
    assert getattr(error, "status_code", None) == status
    body = getattr(error, "body", None)
    assert isinstance(body, str) and body.startswith('{"reason": "ERROR_REASON_SIMULATED"')
    assert "refused Bearer ***" in body
    assert len(body) < 20000  # an excerpt, not the whole body
    assert TOKEN not in body and TOKEN not in str(error) and TOKEN not in repr(error.args)
    if status == 429:
        assert error.retry_after == 7.0
    assert not server.errors, server.errors


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, BadRequestError),
        (413, BadRequestError),
        (502, ServerError),
        (401, AuthenticationError),
        (429, RateLimitError),
    ],
)
def test_http_status_switch_of_the_local_server(status, cls):
    # Bug 16, against the local server's http_status switch.
    with LocalMyshellServer(http_status=status) as server:
        with Myshell(server.base_url, transport="http", timeout=10, max_retries=0) as client:
            with pytest.raises(MyshellError) as caught:
                client.chat(MODEL, user("x"))
    error = caught.value
    assert isinstance(error, cls), f"HTTP {status} gave {error!r}"
    assert getattr(error, "status_code", None) == status
    assert str(status) in getattr(error, "body", "")
    if status == 429:
        assert error.retry_after == 2.0


# ---------------------------------------------------------------------------
# Header fidelity (PROTOCOL.md 2.1): what the current web app sends


def test_http_headers_are_the_web_apps(local_server, caplog):
    import logging
    import re
    import uuid

    with caplog.at_level(logging.DEBUG):
        with make_client(
            local_server, "http", security_token="sec-tok-98765", headers={"Accept-Language": "ja", "x-extra": "yes"}
        ) as client:
            list(client.generate("4738", user("one")))
            list(client.generate("4738", user("two")))
    first, second = (r["headers"] for r in local_server.http_requests)
    assert first["platform"] == "web" and first["myshell-client-version"] == "v1.6.4"
    assert first["myshell-service-name"] == "organics-api"
    assert re.fullmatch(r"[0-9]{13}", first["timestamp"])  # with its check digit (test_signing)
    # A UUID v4, the same for every request of the client, unless one is given.
    assert uuid.UUID(first["visitor-id"]).version == 4 and second["visitor-id"] == first["visitor-id"]
    assert first["myshell-security-token"] == "sec-tok-98765"
    assert first["accept-language"] == "ja" and first["x-extra"] == "yes"  # the caller's, merged last
    assert "sec-tok-98765" not in caplog.text


def test_http_default_accept_language_is_en_and_a_given_visitor_id_is_kept(local_server):
    with make_client(local_server, "http", visitor_id="my-visitor") as client:
        list(client.generate("4738", user("x")))
    headers = local_server.http_requests[-1]["headers"]
    assert headers["accept-language"] == "en" and headers["visitor-id"] == "my-visitor"
    assert "myshell-security-token" not in headers
