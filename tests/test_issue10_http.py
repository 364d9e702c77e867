"""Issue 10 regressions, HTTP transport: each test failed before the fix.

Real loopback servers only: the local server, or the raw scripted server of
``scripted_http`` when exact bytes matter. The bug number of each test is in
a comment; the tests use the public API only (the private layout changed
with the fix), except where noted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
from typing import Callable, List, Tuple

import pytest

import myshell_sync
from myshell_sync import (
    AuthenticationError,
    ClientClosedError,
    Myshell,
    MyshellError,
    RateLimitError,
    ServerError,
    Timeout,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import client_sockets, eventually
from scripted_http import RawConn, RawServer, sse_event

# Absent before the fix: isinstance(x, ()) is False, so the assertion says so.
BadRequestError = getattr(myshell_sync, "BadRequestError", ())

MODEL = "4738"  # the local server's (and the scripted server's) HTTP bot
ENERGY = {"energy": 41, "dailyEnergy": 200}


def user(text: str) -> List[dict]:
    return [{"role": "user", "content": text}]


def http_threads() -> List[threading.Thread]:
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
    served: List[Tuple[int, str]] = []  # (connection number, message)
    conns: List[RawConn] = []

    def answer(conn: RawConn, message: str) -> None:
        if conn not in conns:
            conns.append(conn)
        served.append((conns.index(conn), message))
        if message == "slow":
            conn.send_sse_head()
            conn.send_chunk(sse_event("TEXT", content="first "))
            release.wait(10)
            conn.send_chunk(reply_body("first second")[len(sse_event("TEXT", content="first ")):])
            conn.end_chunks()
        else:  # Content-Length framing: reusable even by a client that stops at REPLIED
            body = reply_body(f"re {message}")
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

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
    unexpected: List[BaseException] = []
    rounds = 300
    with LocalMyshellServer() as server:
        started = time.monotonic()
        for i in range(rounds):
            client = Myshell(server.base_url, transport="http", timeout=5, close_timeout=2)
            barrier = threading.Barrier(2)
            mode = i % 3

            def call() -> None:
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

            threads = [threading.Thread(target=call), threading.Thread(target=close)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
                assert not thread.is_alive()
            if unexpected:
                break
            assert client.closed
        elapsed = time.monotonic() - started
    assert not unexpected, f"round {i}: {unexpected[0]!r}"
    assert no_http_threads(), http_threads()
    assert client_sockets(server.port) == 0
    assert elapsed < 30


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
        with Myshell(server.base_url, transport="http", timeout=10) as client:
            started = time.monotonic()
            reply = client.chat(MODEL, user("x"))
            elapsed = time.monotonic() - started
            stop.set()
            assert reply.text == "done now"
            assert client.energy_info == ENERGY
            assert elapsed < 2.5, elapsed
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
    events = (sse_event("TEXT", content="one ") + interloper + sse_event("TEXT", content="two")
              + interloper + sse_event("TEXT_STREAM_PUSH_FINISHED", content="")
              + sse_event("USER_SENT_MESSAGE_REPLIED", message={"text": "one two"}))
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
        body = json.dumps({"reason": "ERROR_REASON_SIMULATED", "message": f"refused {echoed}",
                           "pad": "x" * 20000}).encode()
        extra = b"Retry-After: 7\r\n" if status == 429 else b""
        conn.send(b"HTTP/1.1 %d Nope\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                  % (status, extra, len(body), body))

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


@pytest.mark.parametrize("status, cls", [(400, BadRequestError), (413, BadRequestError), (502, ServerError),
                                         (401, AuthenticationError), (429, RateLimitError)])
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
