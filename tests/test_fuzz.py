"""Property-based fuzzing of whole replies (fuzz (c) in RELIABILITY.md).

A raw server plays a random sequence of valid, neutral and invalid frames
ending in a random way; the generator yields exactly the expected chunks and
ends, or raises the expected ``MyshellError`` subclass (with the yielded text
as ``partial_text``) within the configured timeout; no thread dies silently;
nothing is left behind.

The codec's properties (fuzz (a)) are in test_codec.py, the SSE parser's
(fuzz (b)) in test_sse.py. Example counts are in RELIABILITY.md;
``--run-slow`` runs this ten times longer.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
import time
from typing import Any

import pytest
from helpers import client_sockets, client_threads, eventually
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scripted_http import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawConn, RawServer

from myshell_sync import (
    AuthenticationError,
    CaptchaRequiredError,
    ConnectionLostError,
    InsufficientEnergyError,
    Myshell,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    ServerError,
    Timeout,
)

# ---------------------------------------------------------------------------
# Whole replies from random frame sequences

REQ = "{rid}"  # replaced by the request's reqId when played

NEUTRAL = st.one_of(
    st.tuples(st.just("text"), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.booleans()),
    st.tuples(st.just("acked text"), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)),
    st.tuples(
        st.just("fragmented text"), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
    ),
    st.sampled_from(
        [
            ("null text",),
            ("other reqId",),
            ("other reqId error",),
            ("account event",),
            ("engine.io ping",),
            ("websocket ping",),
            ("binary frame",),
            ("noop",),
            ("other namespace",),
            ("message_sent",),
            ("unknown event",),
            ("event without payload",),
        ]
    ),
)

GARBAGE = {
    "not engine.io": "x garbage",
    "broken json": '42/chat,["text_stream",',
    "not an array": '42/chat,{"a":1}',
    "no event name": "42/chat,[]",
    "name not a string": "42/chat,[7]",
    "ack id before an object": '42/chat,7{"reqId":"{rid}"}',
    "data.text not a string": '42/chat,["text_stream",{"reqId":"{rid}","data":{"text":42}}]',
    "data not an object": '42/chat,["text_stream",{"reqId":"{rid}","data":[1]}]',
    "empty frame": "",
}
ERROR_EVENTS = {
    "need_verify_captcha": CaptchaRequiredError,
    "no_enough_energy": InsufficientEnergyError,
    "chat_login_popup": AuthenticationError,
    "auth_fail": AuthenticationError,
    "message_error": ServerError,
    "exception": ServerError,
}

OTHER_TEXT = "\0something else"
FIXED_ENDINGS = [
    "replied with other text",
    "need to register",
    "exception without reqId",
    "engine.io close",
    "namespace disconnect",
    "namespace refused",
    "tcp reset",
    "eof",
    "not utf-8",
    "rsv bits",
    "silence",
]
# One branch per kind of ending, so each is drawn about as often as the others.
TERMINAL = st.one_of(
    st.tuples(st.just("replied"), st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)),
    st.tuples(st.just("error event"), st.sampled_from(sorted(ERROR_EVENTS))),
    st.tuples(st.just("garbage"), st.sampled_from(sorted(GARBAGE))),
    st.tuples(st.just("close frame"), st.sampled_from([1000, 1001, 1011, 4000, 1005, 999])),
    *[st.just((name,)) for name in FIXED_ENDINGS],
)

# One example of each kind of ending, tried on every run: one_of does not
# draw its branches evenly, so the random examples alone may miss a kind.
ENDING_EXAMPLES = [
    [("text", "one ", False), ending]
    for ending in [
        ("replied", "!"),
        ("error event", "no_enough_energy"),
        ("garbage", "broken json"),
        ("close frame", 1000),
        *[(name,) for name in FIXED_ENDINGS],
    ]
]


def expected_outcome(steps) -> tuple[list[str], type | None]:
    """The chunks the client must yield and the error it must raise (or None)."""
    chunks: list[str] = []
    final = False
    for step in steps[:-1]:
        if step[0] in ("text", "acked text", "fragmented text") and step[1]:
            chunks.append(step[1])
        if step[0] == "text" and step[2]:
            final = True
    terminal = steps[-1]
    kind = terminal[0]
    if kind in ("replied", "replied with other text"):
        # message_replied's text is authoritative: what no delta carried is yielded
        streamed = "".join(chunks)
        final_text = streamed + terminal[1] if kind == "replied" else OTHER_TEXT
        if final_text.startswith(streamed) and len(final_text) > len(streamed):
            chunks.append(final_text[len(streamed) :])
        return chunks, None
    if kind == "silence":
        return chunks, None if final else MyshellTimeoutError
    if kind == "error event":
        return chunks, ERROR_EVENTS[terminal[1]]
    if kind == "close frame":
        return chunks, ConnectionLostError if terminal[1] in (1000, 1001, 1011, 4000) else ProtocolError
    errors = {
        "need to register": AuthenticationError,
        "exception without reqId": ServerError,
        "engine.io close": ConnectionLostError,
        "namespace disconnect": ConnectionLostError,
        "namespace refused": AuthenticationError,
        "tcp reset": ConnectionLostError,
        "eof": ConnectionLostError,
        "not utf-8": ProtocolError,
        "rsv bits": ProtocolError,
        "garbage": ProtocolError,
    }
    return chunks, errors[kind]


def play(conn: RawConn, rid: str, steps) -> None:
    def text_stream(text, final=False, ack=""):
        frame = "42/chat,%s%s" % (
            ack,
            json.dumps(["text_stream", {"reqId": rid, "data": {"text": text, "isFinal": final}}]),
        )
        return frame

    for step in steps:
        kind = step[0]
        if kind == "text":
            conn.send_frame(text_stream(step[1], step[2]))
        elif kind == "acked text":
            conn.send_frame(text_stream(step[1], ack="5"))
        elif kind == "fragmented text":
            data = text_stream(step[1]).encode()
            conn.send_frame(data[:9], OP_TEXT, fin=False)
            conn.send_frame(data[9:-3], OP_CONT, fin=False)
            conn.send_frame(data[-3:], OP_CONT, fin=True)
        elif kind == "null text":
            conn.emit("text_stream", {"reqId": rid, "data": {"text": None}})
        elif kind == "other reqId":
            conn.emit("text_stream", {"reqId": "x" + rid, "data": {"text": "WRONG", "isFinal": True}})
        elif kind == "other reqId error":
            conn.emit("message_error", {"reqId": "x" + rid, "message": "not yours"})
        elif kind == "account event":
            conn.emit("energy_info", {"data": {"energy": 1}})
        elif kind == "engine.io ping":
            conn.send_frame("2")
        elif kind == "websocket ping":
            conn.send_frame(b"ping", OP_PING)
        elif kind == "binary frame":
            conn.send_frame(b"\x00\xff audio", OP_BINARY)
        elif kind == "noop":
            conn.send_frame("6")
        elif kind == "other namespace":
            conn.send_frame('42/other,["text_stream",{"reqId":"%s","data":{"text":"WRONG"}}]' % rid)
        elif kind == "message_sent":
            conn.emit("message_sent", {"reqId": rid, "data": {"text": "the question"}})
        elif kind == "unknown event":
            conn.emit("some_new_event", {"reqId": rid, "data": {"text": "WRONG"}})
        elif kind == "event without payload":
            conn.send_frame('42/chat,["text_stream"]')
        # terminals
        elif kind == "replied":
            streamed = "".join(s[1] for s in steps[:-1] if s[0] in ("text", "acked text", "fragmented text"))
            conn.emit("message_replied", {"reqId": rid, "data": {"text": streamed + step[1]}})
        elif kind == "replied with other text":
            conn.emit("message_replied", {"reqId": rid, "data": {"text": OTHER_TEXT}})
        elif kind == "need to register":
            conn.emit("message_replied", {"reqId": rid, "data": {"type": "NEED_TO_REGISTER", "text": ""}})
        elif kind == "exception without reqId":
            conn.emit("exception", {"message": "socket failure"})
        elif kind == "error event":
            conn.emit(step[1], {"reqId": rid, "message": "fuzzed"})
        elif kind == "engine.io close":
            conn.send_frame("1")
        elif kind == "namespace disconnect":
            conn.send_frame("41/chat,")
        elif kind == "namespace refused":
            conn.send_frame('44/chat,{"message":"go away"}')
        elif kind == "garbage":
            conn.send_frame(GARBAGE[step[1]].replace("{rid}", rid))
        elif kind == "close frame":
            conn.send_frame(struct.pack("!H", step[1]), OP_CLOSE)
        elif kind == "not utf-8":
            conn.send_frame(b"42/chat,\xff", OP_TEXT)
        elif kind == "rsv bits":
            conn.send_frame("2", rsv=2)
        elif kind == "tcp reset":
            conn.reset()
            return
        elif kind == "eof":
            conn.kill()
            return
    conn.wait_closed(30)


class Stage:
    """One raw server for every example; each connection plays the current script."""

    def __init__(self) -> None:
        self.steps: Any = None
        self.conns: queue.Queue[RawConn] = queue.Queue()

    def handler(self, conn: RawConn) -> None:
        self.conns.put(conn)
        conn.handshake()
        _, request = conn.recv_event()
        play(conn, request["reqId"], self.steps)


# first_chunk and idle end the "silence" examples (the error, or the grace
# period after isFinal, decides the outcome); 1 s leaves the server thread time
# to send the other endings' frames on a loaded machine.
TIMEOUT = Timeout(connect=10, first_chunk=1.0, idle=1.0)
# How long a reply may go on after its isFinal frame (1 s in the library;
# shortened here so that the silent endings stay cheap).
GRACE = 0.2
# Every ending comes within the idle limit; the alternative is the server's 30 s
# wait for the client to go away.
BOUND = 10


def _replies_hold(max_examples: int, monkeypatch) -> None:
    import myshell_sync._reply

    monkeypatch.setattr(myshell_sync._reply, "FINAL_GRACE", GRACE)
    stage = Stage()
    thread_failures: list = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: thread_failures.append(args)
    seen_outcomes: dict = {}

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(steps=st.tuples(st.lists(NEUTRAL, max_size=8), TERMINAL).map(lambda t: [*t[0], t[1]]))
    def reply_property(steps):
        chunks, error_type = expected_outcome(steps)
        stage.steps = steps
        got: list[str] = []
        error = None
        with Myshell(server.base_url, captcha_delay=0, timeout=TIMEOUT, max_retries=0, close_timeout=1) as client:
            started = time.monotonic()
            try:
                for chunk in client.generate("gpt-4", [{"role": "user", "content": "fuzz"}]):
                    got.append(chunk)
            except Exception as exc:  # checked below
                error = exc
            elapsed = time.monotonic() - started
        conn = stage.conns.get(timeout=5)
        assert conn.done.wait(10), "the server's side did not end"
        assert got == chunks, (steps, error)
        if error_type is None:
            assert error is None, (steps, error)
        else:
            assert type(error) is error_type, (steps, error)
            assert error.partial_text == "".join(chunks)
            assert error.req_id
        assert isinstance(error, (MyshellError, type(None)))
        assert elapsed < BOUND, (steps, elapsed)
        assert eventually(lambda: not client_threads(), 10), client_threads()
        assert client_sockets(server.port) == 0
        assert not thread_failures, thread_failures
        name = steps[-1][0]
        seen_outcomes[name] = seen_outcomes.get(name, 0) + 1

    for steps in ENDING_EXAMPLES:
        reply_property = example(steps=steps)(reply_property)
    try:
        with RawServer(stage.handler) as server:
            reply_property()
            assert not server.errors, server.errors
    finally:
        threading.excepthook = previous_hook
    # every kind of ending was tried
    assert set(seen_outcomes) == {steps[-1][0] for steps in ENDING_EXAMPLES}, seen_outcomes
    print(f"\nreply endings tried: {dict(sorted(seen_outcomes.items()))}")


def test_random_frame_sequences_give_the_right_chunks_or_the_right_error(monkeypatch):
    _replies_hold(max_examples=150, monkeypatch=monkeypatch)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_random_frame_sequences_long(monkeypatch):
    _replies_hold(max_examples=2000, monkeypatch=monkeypatch)
