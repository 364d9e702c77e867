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
import struct
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
    ConnectTimeoutError,
    Myshell,
    MyshellConnectionError,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    ServerError,
    Timeout,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import client_sockets, eventually, ws_pool
from scripted_http import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    RawConn,
    RawServer,
    frame_header,
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


def reply_to_request(conn: RawConn):
    """Handshake and read the text_chat; returns its reqId."""
    conn.handshake()
    _, request = conn.recv_event()
    return request["reqId"]


# ---------------------------------------------------------------------------
# WebSocket: frames


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
        frame = ('42/chat,["text_stream",{"reqId":"%s","data":{"text":"whole ☃ chunk","isFinal":true}}]'
                 % rid).encode()
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

    outcome = call(play, max_event_size=1_000_000)
    assert isinstance(outcome.error, ProtocolError) and "max_event_size" in str(outcome.error)
    assert outcome.chunks == ["small "] and outcome.error.partial_text == "small "
    assert outcome.elapsed < 2


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
    outcome = call(play, timeout=5, **options)
    assert isinstance(outcome.error, ProtocolError), outcome.error
    assert str(announced) in str(outcome.error)
    assert outcome.elapsed < 1


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
            '42/chat,["text_stream",{"reqId":"%s","data":{"text":"' % rid).encode() + "好".encode()[:2],
    }


GARBAGE = list(_garbage("r"))


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_frame_mid_reply_is_a_protocol_error(kind):
    def play(conn):
        rid = reply_to_request(conn)
        conn.text_stream(rid, "partial ")
        conn.send_frame(_garbage(rid)[kind], OP_TEXT)
        conn.wait_closed()

    outcome = call(play)
    assert isinstance(outcome.error, ProtocolError), outcome.error
    assert outcome.chunks == ["partial "] and outcome.error.partial_text == "partial "
    assert outcome.elapsed < 1


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
            for name in ("text_stream", "message_replied", "message_error", "need_verify_captcha",
                         "no_enough_energy", "auth_fail", "chat_login_popup", "exception"):
                conn.emit(name, {"reqId": "not-" + rid, "message": "for someone else",
                                 "data": {"text": "WRONG", "isFinal": True}})
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
# WebSocket: the server goes away, or stops playing its part

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]


@pytest.mark.parametrize(
    "payload, error",
    [(struct.pack("!H", code) + b"bye", ConnectionLostError) for code in VALID_CLOSE_CODES]
    + [(b"", ConnectionLostError), (struct.pack("!H", 1000) + b"\xff", ConnectionLostError)]
    + [(struct.pack("!H", code), ProtocolError) for code in INVALID_CLOSE_CODES]
    + [(b"\x03", ProtocolError)],
    ids=[str(c) for c in VALID_CLOSE_CODES] + ["no code", "reason not UTF-8 (not checked)"]
    + [str(c) for c in INVALID_CLOSE_CODES] + ["one byte"],
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
    assert outcome.elapsed < 1


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
    assert outcome.elapsed < 1


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
    assert outcome.elapsed < 1


def test_server_that_stops_reading_a_small_request_times_out():
    # The request fits in the socket buffers, so it is "sent"; the reply never comes.
    def play(conn):
        conn.handshake()
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=3, first_chunk=0.5, idle=3), close_timeout=0.5)
    assert type(outcome.error) is MyshellTimeoutError and "first_chunk" in str(outcome.error)
    assert 0.5 <= outcome.elapsed < 1.5


def test_server_that_stops_reading_a_large_request_times_out():
    # 8 MB cannot fit in the socket buffers (the server's window is tiny), so
    # the send itself blocks: it must not outlive Timeout.first_chunk.
    def play(conn):
        conn.handshake(max_payload=100_000_000)
        conn.stall()

    prompt = [{"role": "user", "content": "x" * 8_000_000}]
    outcome = call(play, timeout=Timeout(connect=3, first_chunk=0.5, idle=3), messages=prompt,
                   server_options={"rcvbuf": 4096})
    assert type(outcome.error) is MyshellTimeoutError and "stopped reading" in str(outcome.error)
    assert 0.5 <= outcome.elapsed < 1.5


def test_close_ends_the_reader_even_if_the_server_never_answers_the_close_frame():
    def play(conn):
        conn.handshake()
        conn.recv_event()
        conn.stall()  # never reads again, never closes

    with RawServer(play) as server:
        client = Myshell(server.base_url, captcha_delay=0, close_timeout=0.5,
                         timeout=Timeout(connect=3, first_chunk=0.3, idle=3))
        with pytest.raises(MyshellTimeoutError):
            list(client.generate("gpt-4", USER))
        started = time.monotonic()
        client.close()
        assert time.monotonic() - started < 1
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
            trickle = b"X-Slow: " + b"." * 500
        else:
            conn.accept_upgrade()
            if phase == "namespace ack":
                conn.send_frame('0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')
                conn.recv_text()
            trickle = frame_header(300) + b"4" * 300
        for byte in trickle:
            conn.send(bytes([byte]))
            if conn.stopping.wait(0.05):
                return

    outcome = call(play, timeout=Timeout(connect=0.5, first_chunk=3, idle=3))
    assert type(outcome.error) is ConnectTimeoutError, outcome.error
    assert 0.5 <= outcome.elapsed < 1.2


@pytest.mark.parametrize(
    "answer, error",
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", ConnectTimeoutError),
        (b"", ConnectTimeoutError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", MyshellConnectionError),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n", MyshellConnectionError),
        (b"hello\r\n\r\n", MyshellConnectionError),
        (b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:9/ws/\r\nContent-Length: 0\r\n\r\n",
         MyshellConnectionError),
    ],
    ids=["headers then stall", "nothing at all", "200 instead of 101", "wrong accept key",
         "not HTTP", "redirect"],
)
def test_upgrade_never_completed(answer, error):
    def play(conn):
        conn.read_request()
        conn.send(answer)
        conn.stall()

    outcome = call(play, timeout=Timeout(connect=0.5, first_chunk=3, idle=3))
    assert type(outcome.error) is error, outcome.error
    assert outcome.elapsed < 1.2


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
