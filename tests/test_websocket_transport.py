"""The WebSocket transport, against real servers on loopback: the handshake,
the request, routing by reqId, frames, liveness, close, and faults on the wire.

Three servers: the project's ``LocalMyshellServer`` (well-behaved, with fault
switches), ``tests/scripted.py`` (on ``websockets``: exact Socket.IO frames) and
``tests/scripted_http.py`` (raw bytes: what no WebSocket library would send).
Every fault case checks one property: the generator yields the right chunks and
ends, or raises the right ``MyshellError`` subclass within the configured
timeout, and (``helpers.call``) no client thread or socket is left.
RELIABILITY.md maps every case to its test.
"""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
import uuid

import pytest
from helpers import (
    POEM,
    USER,
    call,
    client_sockets,
    client_threads,
    expected_chunks,
    run_threads,
    user,
    ws_pool,
)
from scripted import OPEN_PACKET, ScriptedServer
from scripted_http import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    RawConn,
    RawServer,
    frame_header,
)

from myshell_sync import (
    AuthenticationError,
    BadRequestError,
    CaptchaRequiredError,
    ConnectionLostError,
    ConnectTimeoutError,
    InsufficientEnergyError,
    Myshell,
    MyshellConnectionError,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    RequestTooLargeError,
    ServerError,
    Timeout,
    generate_signature,
    generate_timestamp,
    models,
)
from myshell_sync.local import LocalMyshellServer


def scripted(handler, **options):
    """One call against a ``ScriptedServer`` playing ``handler`` (see ``helpers.call``)."""
    options.setdefault("timeout", 5)
    return call(handler, server_type=ScriptedServer, **options)


# ---------------------------------------------------------------------------
# The local server: the handshake, the request, error events, the captcha delay


def test_handshake_and_request_payload(local_server):
    with Myshell(local_server.base_url, token=None, visitor_id="visitor-1", captcha_delay=0) as client:
        list(client.generate("gpt-3.5-turbo", POEM))
    auth = local_server.auths[-1]
    assert auth == {"token": None, "visitorId": "visitor-1"}
    request = local_server.requests[-1]
    assert set(request) == {"reqId", "botUid", "sourceFrom", "text", "signature", "timestamp", "version"}
    assert uuid.UUID(request["reqId"]).version == 4
    assert request["botUid"] == models["gpt-3.5-turbo"]
    assert request["sourceFrom"] == "myshellWebsite"
    assert request["text"] == POEM[0]["content"]
    assert generate_timestamp(int(request["timestamp"])) == request["timestamp"]
    assert generate_signature(request["text"], request["timestamp"]) == {
        "signature": request["signature"],
        "timestamp": request["timestamp"],
        "version": request["version"],
    }


def test_captcha_delay_waits_after_the_namespace_ack():
    # The server refuses a request sooner than 2.5 s after the namespace ack;
    # the client waits out its 3 s captcha_delay, once per connection.
    with LocalMyshellServer(captcha_window=2.5) as server:
        with Myshell(server.base_url, captcha_delay=3) as client:
            started = time.monotonic()
            assert "".join(client.generate("gpt-4", POEM)) == "".join(expected_chunks("gpt-4"))
            assert time.monotonic() - started >= 2.5
            # only the first request on a connection waits: a second wait would be 3 s
            started = time.monotonic()
            assert "".join(client.generate("gpt-4", POEM))
            assert time.monotonic() - started < 1.5
    assert server.connects == 1


@pytest.mark.parametrize(
    "event, error",
    [
        ("need_verify_captcha", CaptchaRequiredError),
        ("no_enough_energy", InsufficientEnergyError),
        ("chat_login_popup", AuthenticationError),
        ("auth_fail", AuthenticationError),
        ("message_error", ServerError),
        ("exception", ServerError),
    ],
)
def test_error_events_map_to_typed_errors(local_server, client, event, error):
    local_server.error_event = event
    gen = client.generate("gpt-4", POEM)
    with pytest.raises(error) as info:
        next(gen)
    assert event in str(info.value)
    assert info.value.partial_text == ""
    assert info.value.req_id == local_server.requests[-1]["reqId"]


def test_error_mid_reply_carries_the_partial_text(local_server, client):
    local_server.error_event = "exception"
    local_server.error_after = 3
    received = []
    with pytest.raises(ServerError) as info:
        for chunk in client.generate("gpt-4", POEM):
            received.append(chunk)
    assert received == expected_chunks("gpt-4")[:3]
    assert info.value.partial_text == "".join(received)
    assert "simulated" in str(info.value)  # the server's own message


def test_break_abandons_the_reply_and_the_connection_stays_usable(local_server, client):
    local_server.chunk_delay = 0.02
    for _chunk in client.generate("gpt-4", POEM):
        break
    # late frames of the abandoned reply are discarded, not mixed into the next
    local_server.chunk_delay = 0
    assert list(client.generate("samantha", POEM)) == expected_chunks("samantha")
    assert local_server.connects == 1


# ---------------------------------------------------------------------------
# A scripted WebSocket server (websockets): exact Socket.IO frames


def test_each_chunk_is_yielded_as_soon_as_it_arrives():
    got_first = threading.Event()

    def play(peer):
        peer.handshake()
        name, request = peer.recv_event()
        assert name == "text_chat"
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
    error = scripted(play, timeout=Timeout(connect=0.5, first_chunk=30, idle=30)).error
    assert isinstance(error, ConnectTimeoutError)
    assert isinstance(error, MyshellTimeoutError) and isinstance(error, MyshellConnectionError)
    assert time.monotonic() - started < 10  # the connect limit, not the others' 30 s


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

    outcome = scripted(play, max_retries=2)
    assert outcome.error is None and outcome.chunks == ["ok"]
    assert len(attempts) == 3


@pytest.mark.parametrize(
    "frame",
    ["0not json", '0{"sid":"x"}', "hello", '0{"sid":"x","pingInterval":-1,"pingTimeout":1}'],
)
def test_bad_open_packet_is_a_protocol_error(frame):
    def play(peer):
        peer.send(frame)
        peer.wait_closed()

    assert isinstance(scripted(play).error, ProtocolError)


def test_refused_namespace_is_an_authentication_error():
    def play(peer):
        peer.send(OPEN_PACKET % (25000, 20000, 1000000))
        peer.recv()
        peer.send('44/chat,{"message":"Not authorized"}')
        peer.wait_closed()

    outcome = scripted(play, max_retries=2)
    assert isinstance(outcome.error, AuthenticationError)
    assert "Not authorized" in str(outcome.error)
    assert len(outcome.server.peers) == 1  # never retried


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
def test_garbage_frame_after_the_final_chunk_is_a_protocol_error(frame):
    # The chunk before the garbage has isFinal: the reply is in its grace
    # period, waiting for message_replied, when the garbage comes.
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["partial "], replied=False)
        peer.send(frame)
        peer.wait_closed()

    outcome = scripted(play)
    assert outcome.chunks == ["partial "]
    assert isinstance(outcome.error, ProtocolError)
    assert outcome.error.partial_text == "partial "


def test_text_that_is_not_a_string_is_a_protocol_error():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": 42, "isFinal": False}})
        peer.wait_closed()

    error = scripted(play).error
    assert isinstance(error, ProtocolError) and "data.text" in str(error)


def test_silent_server_after_the_request_is_a_timeout():
    def play(peer):
        peer.handshake()
        peer.recv_event()
        peer.wait_closed()

    started = time.monotonic()
    error = scripted(play, timeout=Timeout(connect=30, first_chunk=0.5, idle=30)).error
    assert isinstance(error, MyshellTimeoutError) and not isinstance(error, MyshellConnectionError)
    assert "first_chunk" in str(error)
    assert 0.5 <= time.monotonic() - started < 10


def test_silence_between_chunks_is_an_idle_timeout():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["a"], replied=False)  # isFinal is on "a"
        peer.wait_closed()

    # isFinal arrived, so the grace period ends the reply: not a timeout
    outcome = scripted(play, timeout=Timeout(connect=5, first_chunk=5, idle=0.3))
    assert outcome.error is None and outcome.chunks == ["a"]

    def play_no_final(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": "a", "isFinal": False}})
        peer.wait_closed()

    error = scripted(play_no_final, timeout=Timeout(connect=5, first_chunk=5, idle=0.3)).error
    assert isinstance(error, MyshellTimeoutError) and "idle" in str(error)
    assert error.partial_text == "a"


def test_total_timeout_caps_the_reply():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        for _ in range(600):  # 30 s of chunks
            peer.emit("text_stream", {"reqId": request["reqId"], "data": {"text": "x", "isFinal": False}})
            if peer.stopping.wait(0.05):
                return

    # total counts the connect too: 3 s leaves room for a slow one on a loaded machine
    # (at 0.5 s, a 0.6 s connect once used it all up) and still cuts the 30 s reply.
    outcome = scripted(play, timeout=Timeout(connect=30, first_chunk=30, idle=30, total=3))
    assert isinstance(outcome.error, MyshellTimeoutError) and "total" in str(outcome.error)
    assert not isinstance(outcome.error, ConnectTimeoutError), outcome.error
    assert 0 < len(outcome.chunks) < 600  # the reply is cut, not played out


def test_final_frame_without_message_replied_ends_after_the_grace_period():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.stream_reply(request["reqId"], ["Hello ", "world"], replied=False)
        peer.wait_closed()

    outcome = scripted(play)
    assert outcome.error is None and outcome.chunks == ["Hello ", "world"]


def test_message_replied_alone_delivers_its_text():
    def play(peer):
        peer.handshake()
        _, request = peer.recv_event()
        peer.emit("message_sent", {"reqId": request["reqId"], "data": {"text": "hi"}})
        peer.emit("message_replied", {"reqId": request["reqId"], "data": {"text": "Whole answer"}})
        peer.wait_closed()

    outcome = scripted(play)
    assert outcome.error is None and outcome.chunks == ["Whole answer"]


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


def test_interleaved_frames_on_one_socket_are_routed_by_req_id():
    both_sent = threading.Event()

    def play(peer):
        peer.handshake()
        requests = [peer.recv_event()[1] for _ in range(2)]
        both_sent.set()
        ids = [r["reqId"] for r in requests]
        texts = {r["reqId"]: r["text"] for r in requests}
        for index in range(20):  # alternate frames between the two replies
            for req_id in ids:
                peer.emit(
                    "text_stream", {"reqId": req_id, "data": {"text": f"{texts[req_id]}-{index} ", "isFinal": False}}
                )
        for req_id in ids:
            peer.emit("message_replied", {"reqId": req_id, "data": {"text": None}})
        peer.wait_closed()

    results = {}

    def ask(model, prompt):
        results[prompt] = "".join(client.generate(model, [{"role": "user", "content": prompt}]))

    with ScriptedServer(play) as server:
        with Myshell(server.base_url, captcha_delay=0, max_connections=1, timeout=5) as client:
            run_threads(
                [
                    threading.Thread(target=ask, args=("gpt-4", "A")),
                    threading.Thread(target=ask, args=("samantha", "B")),
                ],
                10,
            )
    assert not server.errors
    assert len(server.peers) == 1  # different bots shared the connection
    for prompt in "AB":
        assert results[prompt] == "".join(f"{prompt}-{i} " for i in range(20))


def test_exception_without_req_id_fails_the_reply():
    def play(peer):
        peer.handshake()
        peer.recv_event()
        peer.emit("exception", {"message": "socket-level failure"})
        peer.wait_closed()

    error = scripted(play).error
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
            # Wake the websockets reader blocked in recv() first: while a thread is inside
            # recv() on it, close() does not release the socket, so no RST would leave
            # (websockets 16 reads that way; 17 does not).
            sock.shutdown(socket.SHUT_RD)
            sock.close()
        else:
            peer.send(ending)
            peer.wait_closed()

    started = time.monotonic()
    error = scripted(play, timeout=30).error
    assert isinstance(error, ConnectionLostError), error
    assert error.partial_text == "partial "
    assert time.monotonic() - started < 10  # at once, not after the 30 s timeout


def test_server_that_stops_pinging_is_dead_after_ping_interval_plus_timeout():
    def play(peer):
        peer.handshake(ping_interval=300, ping_timeout=200)
        peer.recv_event()
        peer.wait_closed()

    started = time.monotonic()
    error = scripted(play, timeout=30).error
    elapsed = time.monotonic() - started
    assert isinstance(error, ConnectionLostError) and "ping" in str(error)
    assert 0.5 <= elapsed < 10  # pingInterval + pingTimeout (0.5 s), not the 30 s timeout


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

    outcome = scripted(play, max_event_size=4096)
    assert outcome.chunks == ["small "]
    assert isinstance(outcome.error, ProtocolError) and "limit" in str(outcome.error)
    assert outcome.error.partial_text == "small "


# ---------------------------------------------------------------------------
# A raw server (scripted_http.RawServer): exact bytes, frames


def reply_to_request(conn: RawConn):
    """Handshake and read the text_chat; returns its reqId."""
    conn.handshake()
    _, request = conn.recv_event()
    return request["reqId"]


def test_binary_frames_and_attachments_mid_reply_are_skipped():
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "one ")
        conn.send_frame(b"\x00\x01\x02 audio bytes", OP_BINARY)
        conn.send_frame(b"", OP_BINARY)
        conn.send_frame('451-/chat,["audio_stream",{"reqId":"%s","data":{"_placeholder":true,"num":0}}]' % rid)
        conn.send_frame(b"\xff" * 1000, OP_BINARY)
        conn.text_stream(rid, "two", is_final=True)
        conn.emit("message_replied", {"reqId": rid, "data": {"text": "one two"}})
        conn.wait_closed()

    outcome = call(play)
    assert outcome.error is None and outcome.chunks == ["one ", "two"]


def test_binary_frame_instead_of_the_open_packet_is_a_protocol_error():
    def play(conn):
        conn.accept_upgrade()
        conn.send_frame(b'0{"sid":"x"}', OP_BINARY)
        conn.wait_closed()

    outcome = call(play)
    assert isinstance(outcome.error, ProtocolError) and "binary" in str(outcome.error)


def test_fragmented_message_with_a_ping_between_fragments_is_reassembled():
    def play(conn):
        rid = reply_to_request(conn)
        frame = ('42/chat,["text_stream",{"reqId":"%s","data":{"text":"whole ☃ chunk","isFinal":true}}]' % rid).encode()
        conn.send_frame(frame[:10], OP_TEXT, fin=False)
        conn.send_frame(b"are you there", OP_PING)
        assert conn.recv_frame() == (0xA, b"are you there")  # the WebSocket pong
        conn.send_frame(frame[10:-20], OP_CONT, fin=False)
        conn.send_frame(frame[-20:], OP_CONT, fin=True)
        conn.emit("message_replied", {"reqId": rid, "data": {"text": "whole ☃ chunk"}})
        conn.wait_closed()

    outcome = call(play)
    assert outcome.error is None and outcome.chunks == ["whole ☃ chunk"]


def test_fragmented_message_growing_past_the_limit_is_a_protocol_error():
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "small ")
        conn.send_frame('42/chat,["text_stream",{"reqId":"%s","data":{"text":"' % rid, fin=False)
        for _ in range(40):  # 4 MB in fragments of 100 kB, each under the limit
            conn.send_frame("x" * 100_000, OP_CONT, fin=False)
        conn.stall()

    outcome = call(play, max_event_size=1_000_000, timeout=30)
    assert isinstance(outcome.error, ProtocolError) and "max_event_size" in str(outcome.error)
    assert outcome.chunks == ["small "] and outcome.error.partial_text == "small "
    assert outcome.elapsed < 10  # once past the limit, not at the 30 s timeout


def test_a_ten_megabyte_frame_is_delivered_whole_under_the_default_limit():
    big = "0123456789" * 1_000_000

    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, big)
        conn.emit("message_replied", {"reqId": rid, "data": {"text": big}})
        conn.wait_closed()

    outcome = call(play, timeout=10)
    assert outcome.error is None
    assert outcome.chunks == [big]


@pytest.mark.parametrize(
    "phase, limit, announced",
    [
        ("reply", 1_000_000, 10_000_000),
        ("reply", None, 16 * 1024 * 1024 + 1),  # the default limit, 16 MB
        ("open packet", 1_000_000, 100_000_000),
    ],
)
def test_a_frame_over_the_limit_fails_from_its_header_alone(phase, limit, announced):
    # Only the header is sent: the client must refuse the frame without
    # waiting for (or buffering) its payload, so this is not a timeout.
    def play(conn):
        if phase == "open packet":
            conn.accept_upgrade()
        else:
            rid = reply_to_request(conn)
            conn.text_stream(rid, "small ")
        conn.send(frame_header(announced) + b"42/chat,")
        conn.stall()

    options = {} if limit is None else {"max_event_size": limit}
    outcome = call(play, timeout=30, **options)
    assert isinstance(outcome.error, ProtocolError), outcome.error
    assert str(announced) in str(outcome.error)
    assert outcome.elapsed < 10  # from the header, not at the 30 s timeout


def _garbage(rid: str) -> dict:
    return {
        "event name not a string": '42/chat,[1,{"reqId":"%s"}]' % rid,
        "event with no payload": "42/chat,",
        "event that is a string": '42/chat,"text_stream"',
        "event that is null": "42/chat,null",
        "ack id and nothing else": "42/chat,12345",
        "ack id before an object": '42/chat,7{"reqId":"%s"}' % rid,
        "ack id before broken JSON": '42/chat,7["text_stream",{"reqId":"%s"' % rid,
        "ack id too long": "42/chat," + "1" * 101 + '["x"]',
        "data not an object": '42/chat,["text_stream",{"reqId":"%s","data":"text"}]' % rid,
        "data.text a list": '42/chat,["text_stream",{"reqId":"%s","data":{"text":["a"]}}]' % rid,
        "message with no Socket.IO type": "4",
        "Socket.IO type out of range": "4x",
        "binary event without a count": '45/chat,["audio_stream",{}]',
        "empty text frame": "",
        "text frame not UTF-8": b"\xff\xfe42",
        "text frame ending inside a UTF-8 character": (
            '42/chat,["text_stream",{"reqId":"%s","data":{"text":"' % rid
        ).encode()
        + "好".encode()[:2],
    }


GARBAGE = list(_garbage("r"))


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_frame_mid_reply_is_a_protocol_error(kind):
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "partial ")
        conn.send_frame(_garbage(rid)[kind], OP_TEXT)
        conn.wait_closed()

    outcome = call(play, timeout=30)
    assert isinstance(outcome.error, ProtocolError), outcome.error
    assert outcome.chunks == ["partial "] and outcome.error.partial_text == "partial "
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


@pytest.mark.parametrize(
    "kind, frame",
    [
        ("rsv bits set", frame_header(1, rsv=4) + b"2"),
        ("reserved opcode", frame_header(1, opcode=3) + b"2"),
        ("fragmented ping", frame_header(1, opcode=OP_PING, fin=False) + b"2"),
        ("ping over 125 bytes", frame_header(200, opcode=OP_PING) + b"p" * 200),
        ("continuation with no start", frame_header(1, opcode=OP_CONT) + b"2"),
        ("text frame inside a fragmented one", frame_header(1, fin=False) + b"4" + frame_header(1) + b"2"),
    ],
)
def test_websocket_protocol_violations_are_protocol_errors(kind, frame):
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "partial ")
        conn.send(frame)
        conn.wait_closed()

    outcome = call(play)
    assert isinstance(outcome.error, ProtocolError), outcome.error
    assert outcome.error.partial_text == "partial "


def test_frames_for_unknown_req_ids_are_dropped_and_the_connection_stays_usable():
    def play(conn):
        conn.handshake()
        for round_ in range(2):
            _, request = conn.recv_event()
            rid = request["reqId"]
            for name in (
                "text_stream",
                "message_replied",
                "message_error",
                "need_verify_captcha",
                "no_enough_energy",
                "auth_fail",
                "chat_login_popup",
                "exception",
            ):
                conn.emit(
                    name,
                    {"reqId": "not-" + rid, "message": "for someone else", "data": {"text": "WRONG", "isFinal": True}},
                )
            conn.emit("text_stream", {"reqId": None, "data": {"text": "WRONG"}})
            conn.emit("energy_info", "not an object")
            conn.send_frame('42/chat,["text_stream"]')  # an event with no payload
            conn.text_stream(rid, f"right {round_}", is_final=True)
            conn.emit("message_replied", {"reqId": rid, "data": {"text": f"right {round_}"}})
        conn.wait_closed()

    texts = []
    with RawServer(play) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=3, max_retries=0) as client:
            for _ in range(2):
                texts.append("".join(client.generate("gpt-4", USER)))
            assert ws_pool(client).opened == 1
    assert not server.errors
    assert texts == ["right 0", "right 1"]


# ---------------------------------------------------------------------------
# A raw server: the server goes away, or stops playing its part

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999]


INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]


@pytest.mark.parametrize(
    "payload, error",
    [(struct.pack("!H", code) + b"bye", ConnectionLostError) for code in VALID_CLOSE_CODES]
    + [(b"", ConnectionLostError), (struct.pack("!H", 1000) + b"\xff", ConnectionLostError)]
    + [(struct.pack("!H", code), ProtocolError) for code in INVALID_CLOSE_CODES]
    + [(b"\x03", ProtocolError)],
    ids=[str(c) for c in VALID_CLOSE_CODES]
    + ["no code", "reason not UTF-8 (not checked)"]
    + [str(c) for c in INVALID_CLOSE_CODES]
    + ["one byte"],
)
def test_close_frame_mid_reply(payload, error):
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "partial ")
        conn.close_frame(payload)
        conn.wait_closed()

    outcome = call(play, timeout=30)
    assert type(outcome.error) is error, outcome.error
    assert outcome.error.partial_text == "partial "
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_close_frame_instead_of_the_open_packet_is_a_connection_error():
    def play(conn):
        conn.accept_upgrade()
        conn.close_frame(struct.pack("!H", 1001))
        conn.wait_closed()

    outcome = call(play)
    assert type(outcome.error) is MyshellConnectionError


@pytest.mark.parametrize("how", ["reset", "eof"])
def test_connection_cut_in_the_middle_of_a_frame(how):
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "partial ")
        conn.send(frame_header(100) + b'42/chat,["te')
        if how == "reset":
            conn.reset()
        else:
            conn.kill()

    outcome = call(play, timeout=30)
    assert type(outcome.error) is ConnectionLostError, outcome.error
    assert outcome.error.partial_text == "partial "
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_an_acked_event_still_counts_when_its_ack_cannot_be_sent():
    # The server asks for an ack, then resets: the chunk arrived whole and
    # must be yielded before the ConnectionLostError.
    def play(conn):
        rid = reply_to_request(conn)
        conn.send_frame('42/chat,5["text_stream",{"reqId":"%s","data":{"text":"kept"}}]' % rid)
        conn.reset()

    outcome = call(play, timeout=30)
    assert type(outcome.error) is ConnectionLostError
    assert outcome.chunks == ["kept"] and outcome.error.partial_text == "kept"


def test_tcp_reset_during_the_handshake_is_a_connection_error():
    def play(conn):
        conn.accept_upgrade()
        conn.send(frame_header(50) + b'0{"sid"')
        conn.reset()

    outcome = call(play, timeout=30)
    assert type(outcome.error) is MyshellConnectionError
    assert outcome.elapsed < 10  # at once, not at the 30 s timeout


def test_server_that_stops_reading_a_small_request_times_out():
    # The request fits in the socket buffers, so it is "sent"; the reply never comes.
    def play(conn):
        conn.handshake()
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=30, first_chunk=0.5, idle=30), close_timeout=0.5)
    assert type(outcome.error) is MyshellTimeoutError and "first_chunk" in str(outcome.error)
    assert 0.5 <= outcome.elapsed < 10


def test_server_that_stops_reading_a_large_request_times_out():
    # 8 MB cannot fit in the socket buffers (the server's window is tiny), so
    # the send itself blocks: it must not outlive Timeout.first_chunk.
    def play(conn):
        conn.handshake(max_payload=100_000_000)
        conn.stall()

    prompt = [{"role": "user", "content": "x" * 8_000_000}]
    outcome = call(
        play, timeout=Timeout(connect=30, first_chunk=0.5, idle=30), messages=prompt, server_options={"rcvbuf": 4096}
    )
    assert type(outcome.error) is MyshellTimeoutError and "stopped reading" in str(outcome.error)
    # Timeout.first_chunk, not pingInterval + pingTimeout (45 s) nor the 30 s limits
    assert 0.5 <= outcome.elapsed < 10


def test_close_ends_the_reader_even_if_the_server_never_answers_the_close_frame():
    def play(conn):
        conn.handshake()
        conn.recv_event()
        conn.stall()  # never reads again, never closes

    with RawServer(play) as server:
        client = Myshell(
            server.base_url, captcha_delay=0, close_timeout=0.5, timeout=Timeout(connect=30, first_chunk=0.3, idle=30)
        )
        with pytest.raises(MyshellTimeoutError):
            list(client.generate("gpt-4", USER))
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 3  # close_timeout (0.5 s), not the default 5 s nor forever
        assert client_threads() == []  # the reader is gone when close() returns
        assert client_sockets(server.port) == 0


@pytest.mark.parametrize("phase", ["upgrade", "open packet", "namespace ack"])
def test_server_trickling_the_handshake_hits_the_connect_timeout(phase):
    # One byte every 50 ms: each read succeeds, so only a deadline on the
    # whole connect stops it.
    def play(conn):
        if phase == "upgrade":
            conn.read_request()
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\n")
            trickle = b"X-Slow: " + b"." * 1000
        else:
            conn.accept_upgrade()
            if phase == "namespace ack":
                conn.send_frame('0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')
                conn.recv_text()
            trickle = frame_header(1000) + b"4" * 1000
        for byte in trickle:
            conn.send(bytes([byte]))
            if conn.stopping.wait(0.05):
                return

    outcome = call(play, timeout=Timeout(connect=0.5, first_chunk=30, idle=30))
    assert type(outcome.error) is ConnectTimeoutError, outcome.error
    assert 0.5 <= outcome.elapsed < 10  # Timeout.connect, not the 50 s the trickle lasts


@pytest.mark.parametrize(
    "answer, error",
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", ConnectTimeoutError),
        (b"", ConnectTimeoutError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", MyshellConnectionError),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n",
            MyshellConnectionError,
        ),
        (b"hello\r\n\r\n", MyshellConnectionError),
        (b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:9/ws/\r\nContent-Length: 0\r\n\r\n", MyshellConnectionError),
    ],
    ids=["headers then stall", "nothing at all", "200 instead of 101", "wrong accept key", "not HTTP", "redirect"],
)
def test_upgrade_never_completed(answer, error):
    def play(conn):
        conn.read_request()
        conn.send(answer)
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=0.5, first_chunk=30, idle=30))
    assert type(outcome.error) is error, outcome.error
    assert outcome.elapsed < 10  # Timeout.connect at most, not the others' 30 s


# ---------------------------------------------------------------------------
# Interrupted large sends and maxPayload (issue 10 regressions)


# python-engineio's default max_http_buffer_size, announced as maxPayload.
LOCAL_MAX_PAYLOAD = 1_000_000


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

    readers: list[threading.Thread] = []

    def interrupt() -> None:
        if sending.wait(20):  # the main thread is blocked sending the rest
            readers.extend(t for t in threading.enumerate() if t.name.startswith("myshell-reader-"))
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt, name="test-interrupter")
    try:
        with RawServer(play, rcvbuf=4096) as server:
            with Myshell(
                server.base_url,
                captcha_delay=0,
                max_retries=0,
                close_timeout=1,
                timeout=Timeout(connect=5, first_chunk=30, idle=30),
            ) as client:
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
    got: list[str] = []

    def play(conn: RawConn) -> None:
        conn.handshake(max_payload=5000)
        while True:
            got.append(conn.recv_event(timeout=30)[0])

    with RawServer(play) as server:
        with Myshell(
            server.base_url, captcha_delay=0, max_retries=0, timeout=Timeout(connect=5, first_chunk=2, idle=2)
        ) as client:
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
