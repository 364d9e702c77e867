"""Issue 10 regressions, WebSocket transport: each test failed before the fix.

Real loopback servers only (the local server, or the raw scripted server of
``scripted_http``); public API only, since the private layout changed with
the fix. The bug number of each test is in a comment.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import List

import pytest

import myshell_sync
from myshell_sync import Myshell, MyshellError, Timeout
from helpers import client_sockets
from scripted_http import RawConn, RawServer

# Absent before the fix: isinstance(x, ()) is False, so the assertion says so.
BadRequestError = getattr(myshell_sync, "BadRequestError", ())
RequestTooLargeError = getattr(myshell_sync, "RequestTooLargeError", ())

# python-engineio's default max_http_buffer_size, announced as maxPayload.
LOCAL_MAX_PAYLOAD = 1_000_000


def user(text: str) -> List[dict]:
    return [{"role": "user", "content": text}]


# -- bug 3: Ctrl-C during a large send ---------------------------------------------


def test_ctrl_c_during_a_large_send_ends_the_reader_and_closes_the_socket():
    # Bug 3: the interrupted send only closed the socket's descriptor, which
    # wakes no thread: the reader (and the TCP connection, held by its recv)
    # lived on until pingInterval + pingTimeout (80 s here).
    sending = threading.Event()  # the server has the start of the big frame
    drain = threading.Event()
    closed_by_client = threading.Event()

    def play(conn: RawConn) -> None:
        conn.handshake(ping_interval=60000, ping_timeout=20000, max_payload=100_000_000)
        conn.recv_exact(1024)  # the first bytes of text_chat; then stop reading
        sending.set()
        drain.wait(30)
        conn.sock.settimeout(0.5)
        while not conn.stopping.is_set():
            try:
                if not conn.sock.recv(65536):
                    break
            except socket.timeout:
                continue
            except OSError:  # a reset also means the client closed it
                break
        else:
            return
        closed_by_client.set()

    readers: List[threading.Thread] = []

    def interrupt() -> None:
        if sending.wait(20):  # the main thread is blocked sending the rest
            readers.extend(t for t in threading.enumerate() if t.name.startswith("myshell-reader-"))
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt, name="test-interrupter")
    try:
        with RawServer(play, rcvbuf=4096) as server:
            with Myshell(server.base_url, captcha_delay=0, max_retries=0, close_timeout=1,
                         timeout=Timeout(connect=5, first_chunk=30, idle=30)) as client:
                interrupter.start()
                with pytest.raises(KeyboardInterrupt):
                    list(client.generate("gpt-4", user("x" * 8_000_000)))
                interrupted = time.monotonic()
                assert readers, "no reader thread while sending"
                for reader in readers:
                    reader.join(3)
                    assert not reader.is_alive(), f"{reader.name} outlived the interrupted send"
                drain.set()
                assert closed_by_client.wait(3), "the client kept the socket open"
                assert time.monotonic() - interrupted < 6  # far less than the 80 s ping budget
                assert client_sockets(server.port) == 0
        assert not server.errors, server.errors
    finally:
        drain.set()
        signal.signal(signal.SIGINT, previous)
        if interrupter.ident is not None:
            interrupter.join(30)


# -- bug 13: a prompt over the server's maxPayload --------------------------------


def test_prompt_over_max_payload_is_refused_before_anything_is_sent(local_server):
    # Bug 13: the oversized text_chat was sent; the server dropped the
    # connection (ConnectionLostError), so every call on it failed too.
    with Myshell(local_server.base_url, captcha_delay=0, timeout=10) as client:
        assert client.chat("gpt-4", user("before")).text == "gpt-4: before"
        with pytest.raises(MyshellError) as caught:
            client.chat("gpt-4", user("x" * LOCAL_MAX_PAYLOAD))
        error = caught.value
        assert type(error) is RequestTooLargeError, repr(error)
        assert isinstance(error, BadRequestError)
        assert error.limit == LOCAL_MAX_PAYLOAD and error.size > LOCAL_MAX_PAYLOAD
        assert str(LOCAL_MAX_PAYLOAD) in str(error) and str(error.size) in str(error)
        # The same connection serves the next call.
        assert client.chat("gpt-4", user("after")).text == "gpt-4: after"
    assert [r["text"] for r in local_server.requests] == ["before", "after"]
    assert local_server.connects == 1


def test_prompt_over_max_payload_on_a_fresh_client_sends_nothing():
    # Bug 13, on the first call of a client (the limit is known once the
    # open packet arrived): nothing but the handshake goes out.
    got: List[str] = []

    def play(conn: RawConn) -> None:
        conn.handshake(max_payload=5000)
        while True:
            got.append(conn.recv_event(timeout=30)[0])

    with RawServer(play) as server:
        with Myshell(server.base_url, captcha_delay=0, max_retries=0,
                     timeout=Timeout(connect=5, first_chunk=2, idle=2)) as client:
            with pytest.raises(MyshellError) as caught:
                client.chat("gpt-4", user("x" * 6000))
            error = caught.value
            assert type(error) is RequestTooLargeError, repr(error)
            assert (error.limit, error.size > 5000) == (5000, True)
            assert "5000" in str(error)
            # The connection is kept: the server sees no close.
            assert len(server.conns) == 1 and not server.conns[0].done.is_set()
    assert got == []
    assert len(server.conns) == 1
