"""Exact-frame fault injection with a scripted WebSocket server on loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from myshell_sync import (
    AuthenticationError,
    ConnectionLostError,
    ConnectTimeoutError,
    Myshell,
    MyshellConnectionError,
    MyshellTimeoutError,
    ProtocolError,
    ServerError,
    Timeout,
)
from scripted import OPEN_PACKET, ScriptedServer

USER = [{"role": "user", "content": "hi"}]


def run(handler, *, timeout=5, **options):
    """Play ``handler`` against one client call; return (chunks, error, server)."""
    chunks = []
    error = None
    options.setdefault("max_retries", 0)
    with ScriptedServer(handler) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=timeout, **options) as client:
            try:
                for chunk in client.generate("gpt-4", USER):
                    chunks.append(chunk)
            except Exception as exc:  # the test asserts on it
                error = exc
    assert not server.errors, server.errors
    return chunks, error, server


def test_each_chunk_is_yielded_as_soon_as_it_arrives():
    got_first = threading.Event()

    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        req_id = request["reqId"]
        peer.emit("text_stream", {"reqId": req_id, "data": {"text": "one ", "index": 0, "isFinal": False}})
        # the second chunk is only sent once the caller holds the first one
        assert got_first.wait(5), "the client held the first chunk back"
        peer.stream_reply(req_id, ["two"], replied=False)
        peer.emit("message_replied", {"reqId": req_id, "data": {"text": "one two"}})
        peer.wait_closed()

    with ScriptedServer(play) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=5) as client:
            gen = client.generate("gpt-4", USER)
            assert next(gen) == "one "
            got_first.set()
            assert list(gen) == ["two"]
    assert not server.errors


def test_ping_is_answered_while_the_consumer_is_idle():
    ponged = threading.Event()
    may_finish = threading.Event()

    def play(peer):
        peer.handshake(ping_interval=300, ping_timeout=300)
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["first "], replied=False)
        peer.send("2")
        # the consumer is not reading: only the reader thread can answer
        if peer.recv(timeout=3) == "3":
            ponged.set()
        assert may_finish.wait(5)
        peer.emit("message_replied", {"reqId": request["reqId"], "data": {"text": "first "}})
        peer.wait_closed()

    with ScriptedServer(play) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=5) as client:
            gen = client.generate("gpt-4", USER)
            assert next(gen) == "first "
            assert ponged.wait(5)
            may_finish.set()
            assert list(gen) == []
    assert not server.errors


def test_no_open_packet_is_a_connect_timeout():
    def play(peer):
        peer.wait_closed()

    started = time.monotonic()
    chunks, error, _ = run(play, timeout=Timeout(connect=0.5, first_chunk=5, idle=5))
    assert isinstance(error, ConnectTimeoutError)
    assert isinstance(error, MyshellTimeoutError) and isinstance(error, MyshellConnectionError)
    assert time.monotonic() - started < 3


def test_a_failed_connect_is_retried_with_backoff():
    attempts = []

    def play(peer):
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            return  # close the socket before the open packet
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["ok"])
        peer.wait_closed()

    chunks, error, _ = run(play, max_retries=2)
    assert error is None and chunks == ["ok"]
    assert len(attempts) == 3


@pytest.mark.parametrize(
    "frame",
    ["0not json", '0{"sid":"x"}', "hello", '0{"sid":"x","pingInterval":-1,"pingTimeout":1}'],
)
def test_bad_open_packet_is_a_protocol_error(frame):
    def play(peer):
        peer.send(frame)
        peer.wait_closed()

    _, error, _ = run(play)
    assert isinstance(error, ProtocolError)


def test_refused_namespace_is_an_authentication_error():
    def play(peer):
        peer.send(OPEN_PACKET % (25000, 20000, 1000000))
        peer.recv()
        peer.send('44/chat,{"message":"Not authorized"}')
        peer.wait_closed()

    _, error, server = run(play, max_retries=2)
    assert isinstance(error, AuthenticationError)
    assert "Not authorized" in str(error)
    assert len(server.peers) == 1  # never retried


@pytest.mark.parametrize(
    "frame",
    [
        "x garbage",
        '42/chat,{"not":"an array"}',
        "42/chat,[]",
        '42/chat,["text_stream",',
        "9",
    ],
)
def test_garbage_frame_mid_reply_is_a_protocol_error(frame):
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["partial "], replied=False)
        peer.send(frame)
        peer.wait_closed()

    chunks, error, _ = run(play)
    assert chunks == ["partial "]
    assert isinstance(error, ProtocolError)
    assert error.partial_text == "partial "


def test_text_that_is_not_a_string_is_a_protocol_error():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": 42, "isFinal": False}})
        peer.wait_closed()

    _, error, _ = run(play)
    assert isinstance(error, ProtocolError) and "data.text" in str(error)


def test_silent_server_after_the_request_is_a_timeout():
    def play(peer):
        peer.handshake()
        peer.recv_event()
        peer.wait_closed()

    started = time.monotonic()
    _, error, _ = run(play, timeout=Timeout(connect=5, first_chunk=0.5, idle=5))
    assert isinstance(error, MyshellTimeoutError) and not isinstance(error, MyshellConnectionError)
    assert "first_chunk" in str(error)
    assert 0.5 <= time.monotonic() - started < 3


def test_silence_between_chunks_is_an_idle_timeout():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["a"], replied=False)  # isFinal is on "a"
        peer.wait_closed()

    # isFinal arrived, so the grace period ends the reply: not a timeout
    chunks, error, _ = run(play, timeout=Timeout(connect=5, first_chunk=5, idle=0.3))
    assert error is None and chunks == ["a"]

    def play_no_final(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": "a", "isFinal": False}})
        peer.wait_closed()

    chunks, error, _ = run(play_no_final, timeout=Timeout(connect=5, first_chunk=5, idle=0.3))
    assert isinstance(error, MyshellTimeoutError) and "idle" in str(error)
    assert error.partial_text == "a"


def test_total_timeout_caps_the_reply():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        for i in range(100):
            peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": "x", "isFinal": False}})
            if peer.stopping.wait(0.05):
                return

    started = time.monotonic()
    chunks, error, _ = run(play, timeout=Timeout(connect=5, first_chunk=5, idle=5, total=0.5))
    assert isinstance(error, MyshellTimeoutError) and "total" in str(error)
    assert 0 < len(chunks) < 100
    assert time.monotonic() - started < 3


def test_final_frame_without_message_replied_ends_after_the_grace_period():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["Hello ", "world"], replied=False)
        peer.wait_closed()

    chunks, error, _ = run(play)
    assert error is None and chunks == ["Hello ", "world"]


def test_message_replied_alone_delivers_its_text():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.emit("message_sent", {"reqId": request["reqId"], "data": {"text": "hi"}})
        peer.emit("message_replied", {"reqId": request["reqId"], "data": {"text": "Whole answer"}})
        peer.wait_closed()

    chunks, error, _ = run(play)
    assert error is None and chunks == ["Whole answer"]


def test_other_requests_frames_and_account_events_are_kept_apart():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        req_id = request["reqId"]
        peer.emit("text_stream", {"reqId": "someone-else", "data": {"text": "WRONG", "isFinal": False}})
        peer.emit("energy_info", {"data": 41})
        peer.emit("unknown_event", {"reqId": req_id, "data": {"text": "WRONG"}})
        peer.send('42/chat,7["text_stream",{"reqId":"%s","data":{"text":"acked ","isFinal":false}}]' % req_id)
        assert peer.recv() == "43/chat,7[]"
        peer.stream_reply(req_id, ["end"])
        peer.wait_closed()

    with ScriptedServer(play) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=5) as client:
            assert list(client.generate("gpt-4", USER)) == ["acked ", "end"]
            assert client.energy_info == 41
    assert not server.errors


def test_exception_without_req_id_fails_the_reply():
    def play(peer):
        peer.handshake()
        peer.recv_event()
        peer.emit("exception", {"message": "socket-level failure"})
        peer.wait_closed()

    _, error, _ = run(play)
    assert isinstance(error, ServerError) and "socket-level failure" in str(error)


@pytest.mark.parametrize("ending", ["1", "41/chat,", "close-frame", "tcp-reset"])
def test_connection_ending_mid_reply_is_connection_lost(ending):
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["partial "], replied=False)
        if ending == "close-frame":
            peer.conn.close(1011, "bye")
        elif ending == "tcp-reset":
            sock = peer.conn.socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        else:
            peer.send(ending)
            peer.wait_closed()

    started = time.monotonic()
    chunks, error, _ = run(play, timeout=30)
    assert isinstance(error, ConnectionLostError), error
    assert error.partial_text == "partial "
    assert time.monotonic() - started < 1.5


def test_server_that_stops_pinging_is_dead_after_ping_interval_plus_timeout():
    def play(peer):
        peer.handshake(ping_interval=300, ping_timeout=200)
        peer.recv_event()
        peer.wait_closed()

    started = time.monotonic()
    _, error, _ = run(play, timeout=30)
    elapsed = time.monotonic() - started
    assert isinstance(error, ConnectionLostError) and "ping" in str(error)
    assert 0.5 <= elapsed < 0.5 + 1


def test_upgrade_refused_with_http_403():
    from websockets.sync.server import serve

    def refuse(connection, request):
        return connection.respond(403, "Forbidden\n")

    server = serve(lambda conn: None, "127.0.0.1", 0, process_request=refuse)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        port = server.socket.getsockname()[1]
        with Myshell(f"http://127.0.0.1:{port}", captcha_delay=0, max_retries=0) as client:
            with pytest.raises(MyshellConnectionError) as info:
                list(client.generate("gpt-4", USER))
        assert "403" in str(info.value)
    finally:
        server.shutdown()
        thread.join(5)


def test_tcp_accepted_but_upgrade_never_answered():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        with Myshell(
            f"http://127.0.0.1:{port}", captcha_delay=0, max_retries=0, timeout=Timeout(connect=0.5)
        ) as client:
            with pytest.raises(ConnectTimeoutError):
                list(client.generate("gpt-4", USER))
        assert time.monotonic() - started < 3
    finally:
        listener.close()


def test_nothing_listening_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with Myshell(f"http://127.0.0.1:{port}", captcha_delay=0, max_retries=0) as client:
        with pytest.raises(MyshellConnectionError) as info:
            list(client.generate("gpt-4", USER))
    assert "base_url" in str(info.value)


def test_frame_over_the_size_limit_is_a_protocol_error():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["small "], replied=False)
        peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": "x" * 5000, "isFinal": False}})
        peer.wait_closed()

    chunks, error, _ = run(play, max_event_size=4096)
    assert chunks == ["small "]
    assert isinstance(error, ProtocolError) and "limit" in str(error)
    assert error.partial_text == "small "
