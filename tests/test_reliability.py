"""Issue 7: fault injection with exact bytes, soak and load.

Every fault case checks the same property: the generator either yields the
right chunks and ends, or raises the right ``MyshellError`` subclass within
the configured timeout; afterwards no client thread and no client socket is
left. The cases already covered in test_faults.py, test_transports.py and
test_pool.py are not repeated here; RELIABILITY.md maps every case to its test.

The raw server (tests/scripted_http.py) writes bytes, so it can misbehave in
ways the ``websockets``-based ScriptedServer cannot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import pytest

from myshell_sync import (
    ClientClosedError,
    ConnectionLostError,
    Myshell,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    ServerError,
    Timeout,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import client_sockets, eventually, ws_pool
from scripted_http import (
    RawConn,
    RawServer,
    sse_event,
)

USER = [{"role": "user", "content": "hi"}]
MODEL = {"websocket": "gpt-4", "http": "assistant"}
ROOT = Path(__file__).resolve().parent.parent


def client_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("myshell-")]


@dataclass
class Outcome:
    chunks: List[str] = field(default_factory=list)
    error: Optional[BaseException] = None
    elapsed: float = 0.0
    server: Any = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def call(handler, *, transport="websocket", timeout: Any = 3, messages=USER, server_options=None,
         on_chunk=None, **options) -> Outcome:
    """Play ``handler`` on a raw server against one call, then check that the
    client left no thread and no socket behind."""
    options.setdefault("max_retries", 0)
    options.setdefault("close_timeout", 1.0)
    outcome = Outcome()
    with RawServer(handler, **(server_options or {})) as server:
        outcome.server = server
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=timeout,
                     **options) as client:
            started = time.monotonic()
            try:
                for chunk in client.generate(MODEL[transport], messages):
                    outcome.chunks.append(chunk)
                    if on_chunk is not None:
                        on_chunk(chunk)
            except Exception as exc:  # asserted by the test
                outcome.error = exc
            outcome.elapsed = time.monotonic() - started
        assert eventually(lambda: not client_threads(), 2), f"threads left: {client_threads()}"
        assert client_sockets(server.port) == 0
    assert not server.errors, server.errors
    if outcome.error is not None:
        assert isinstance(outcome.error, MyshellError), f"bare exception escaped: {outcome.error!r}"
    return outcome


# ---------------------------------------------------------------------------
# HTTP transport

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
# Load: 200 concurrent streams


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_200_concurrent_streams_against_a_slow_bot_are_complete_and_uncrossed(transport):
    count = 200
    names = [f"bot{i:03d}" for i in range(count)]
    if transport == "websocket":
        bots = {f"{i:032x}": name for i, name in enumerate(names)}
        server = LocalMyshellServer(bots=bots, chunk_delay=0.02)
    else:
        bots = {str(1000 + i): name for i, name in enumerate(names)}
        server = LocalMyshellServer(http_bots=bots, chunk_delay=0.02)
    models = list(bots)
    barrier = threading.Barrier(count, timeout=30)
    results: dict = {}
    errors: list = []

    def worker(i: int) -> None:
        prompt = f"stream {i} " + " ".join(f"w{i}x{k}" for k in range(8))
        try:
            gen = client.generate(models[i], [{"role": "user", "content": prompt}])
            chunks = [next(gen)]
            barrier.wait()  # all 200 streams are open at once
            chunks.extend(gen)
            results[i] = (chunks, reply_chunks(names[i], prompt))
        except Exception as exc:  # reported below
            errors.append((i, exc))
            barrier.abort()

    with server:
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=30) as client:
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            opened = ws_pool(client).opened if transport == "websocket" else None
    assert not errors, errors[:3]
    assert len(results) == count
    for got, expected in results.values():
        assert got == expected
    if transport == "websocket":
        assert opened <= 8  # 200 streams multiplexed on the pool's connections


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
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
    assert errors == [] and len(done) == 400


# ---------------------------------------------------------------------------
# Soak: benchmarks/soak.py in a fresh process (its figures go to RELIABILITY.md)


def run_soak(*args: str, timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--json", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _check_soak(report: dict) -> None:
    for run in report["runs"]:
        before, after = run["before"], run["after"]
        assert run["failures"] == 0
        assert after["threads"] == before["threads"], run
        assert after["fds"] == before["fds"], run
        assert after["rss_kb"] - before["rss_kb"] <= 10 * 1024, run


def test_soak_short():
    report = run_soak("--calls", "500", "--abandoned", "100", timeout=120)
    assert [run["transport"] for run in report["runs"]] == ["websocket", "http"]
    _check_soak(report)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_soak_long():
    report = run_soak("--calls", "10000", "--abandoned", "2000", timeout=900)
    _check_soak(report)
    print(json.dumps(report, indent=2))
