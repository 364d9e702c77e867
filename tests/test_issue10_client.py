"""Regression tests for the client-side bugs of issue 10 (4, 5, 8, 9, 10, 14).

Each test failed on 97a72e3 (see the comment above it) and passes now.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from helpers import eventually, ws_pool
from myshell_sync import (
    ConnectTimeoutError,
    Myshell,
    Timeout,
    UnsupportedModelError,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from scripted import ScriptedServer

USER = [{"role": "user", "content": "hello there friend"}]


class SilentServer:
    """Accepts TCP connections and never answers (nor reads)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> "SilentServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()


# -- bug 4: Timeout.total bounds connect retries --------------------------------


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_total_bounds_connect_retries_and_the_message_names_it(transport):
    # 97a72e3: 3 connect attempts with no limit each (connect=None); the
    # total was checked only once the reply had started. Message said
    # "raise Timeout.connect" although connect was None.
    with SilentServer() as server:
        base_url = f"http://127.0.0.1:{server.port}"
        timeout = Timeout(connect=None, first_chunk=30, idle=30, total=1.5)
        with Myshell(base_url, transport=transport, captcha_delay=0, max_retries=2, timeout=timeout) as client:
            started = time.monotonic()
            with pytest.raises(ConnectTimeoutError if transport == "websocket" else Exception) as info:
                list(client.generate("gpt-4" if transport == "websocket" else "assistant", USER))
            elapsed = time.monotonic() - started
    assert "Timeout.total of 1.5s" in str(info.value)
    assert "Timeout.connect" not in str(info.value)
    # Generous: the point is "about 1.5 s", not 3 attempts of unbounded waits.
    assert elapsed < 10


def test_total_caps_the_connect_wait_of_a_websocket_attempt():
    # With connect=10 and total=1, one attempt may not use its 10 s.
    with SilentServer() as server:
        with Myshell(f"http://127.0.0.1:{server.port}", captcha_delay=0, max_retries=5,
                     timeout=Timeout(connect=10, total=1)) as client:
            with pytest.raises(ConnectTimeoutError, match="Timeout.total of 1s"):
                list(client.generate("gpt-4", USER))
            assert len(server.accepted) == 1  # no retry once the total ran out


# -- bug 5: first_chunk means the first text on every transport -----------------


@pytest.mark.parametrize("transport, model", [("websocket", "gpt-4"), ("http", "assistant")])
def test_first_chunk_waits_for_text_and_acknowledgements_do_not_end_it(transport, model):
    # 97a72e3: over the WebSocket, message_sent (sent at once) ended the
    # first_chunk wait, so a bot thinking longer than Timeout.idle failed
    # with an idle timeout; HTTP succeeded.
    with LocalMyshellServer(reply_delay=1.5) as server:
        timeout = Timeout(connect=10, first_chunk=30, idle=0.5)
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=timeout) as client:
            assert "".join(client.generate(model, USER)) == "".join(reply_chunks(model, USER[0]["content"]))


@pytest.mark.parametrize("transport, model", [("websocket", "gpt-4"), ("http", "assistant")])
def test_first_chunk_timeout_names_first_chunk(transport, model):
    with LocalMyshellServer(reply_delay=30) as server:
        timeout = Timeout(connect=10, first_chunk=0.5, idle=30)
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=timeout) as client:
            with pytest.raises(Exception, match=r"first chunk .* ran out of Timeout.first_chunk of 0.5s"):
                list(client.generate(model, USER))


# -- bug 8: Stream.close() from another thread ----------------------------------


@pytest.mark.parametrize("transport, model", [("websocket", "gpt-4"), ("http", "assistant")])
def test_stream_close_from_another_thread_stops_the_iterating_thread(transport, model):
    # 97a72e3: ValueError: generator already executing.
    with LocalMyshellServer(chunk_delay=0.5) as server:
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=30) as client:
            prompt = [{"role": "user", "content": " ".join(["word"] * 40)}]
            stream = client.stream(model, prompt)
            first = threading.Event()
            ended = threading.Event()
            seen = []
            errors = []

            def consume():
                try:
                    for chunk in stream:
                        seen.append(chunk)
                        first.set()
                except BaseException as exc:  # noqa: B902 - reported below
                    errors.append(exc)
                finally:
                    ended.set()

            worker = threading.Thread(target=consume)
            worker.start()
            assert first.wait(10)
            stream.close()  # must not raise
            # The reply has 40 chunks 0.5 s apart: only a cancel ends it this soon.
            assert ended.wait(5)
            worker.join(5)
            assert errors == []
            assert stream.closed and 1 <= len(seen) < 40
            if transport == "http":
                assert server.wait_for(lambda s: s.http_cancelled == 1, 10)
            # The client still works after it.
            assert "".join(client.generate(model, USER)).strip()


def test_stream_closed_before_it_starts_never_sends():
    with LocalMyshellServer() as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=10) as client:
            stream = client.stream("gpt-4", USER)
            stream.close()
            assert list(stream) == []
            assert server.connects == 0


# -- bug 9: one request per bot per socket, after break or timeout --------------


def test_an_abandoned_reply_keeps_its_bot_busy_on_that_connection():
    # 97a72e3: the next gpt-4 request went out on the socket where the server
    # was still streaming the abandoned gpt-4 reply (one pooled connection).
    with LocalMyshellServer(chunk_delay=0.2) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=30) as client:
            long_prompt = [{"role": "user", "content": " ".join(["w"] * 20)}]
            gen = client.generate("gpt-4", long_prompt)
            next(gen)
            gen.close()
            pool = ws_pool(client)
            (first,) = pool.connections()
            assert first.draining == 1 and first.in_flight == 0
            # A new gpt-4 request cannot share the busy socket: it opens another.
            assert "".join(client.generate("gpt-4", USER)) == "".join(reply_chunks("gpt-4", USER[0]["content"]))
            assert pool.opened == 2
            # Another bot may use the first socket meanwhile.
            assert "".join(client.generate("samantha", USER))
            # Once the abandoned reply ends there, gpt-4 may use it again.
            assert eventually(lambda: first.draining == 0, 30)
            assert server.wait_for(lambda s: len(s.completed) >= 3, 30)


def test_a_timed_out_reply_keeps_its_bot_busy_until_it_ends():
    with LocalMyshellServer(reply_delay=1.0) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=Timeout(connect=10, first_chunk=0.2, idle=10)) as client:
            with pytest.raises(Exception, match="first_chunk"):
                list(client.generate("gpt-4", USER))
            (conn,) = ws_pool(client).connections()
            assert conn.draining == 1
            assert eventually(lambda: conn.draining == 0, 30)  # the server ended it
            server.reply_delay = 0
            assert "".join(client.generate("gpt-4", USER))
            assert ws_pool(client).opened == 1  # reused once it was free


# -- bug 10: lone surrogates ----------------------------------------------------


def test_surrogate_joiner_joins_split_pairs_and_replaces_lone_halves():
    from myshell_sync._reply import SurrogateJoiner

    join = SurrogateJoiner()
    assert join.feed("a\ud83d") == "a"
    assert join.feed("\ude00b") == "\U0001f600b"
    assert join.feed("\ude00") == "\ufffd"  # a low half with no high half
    assert join.feed("x\ud83dy") == "x\ufffdy"  # a high half not followed by a low one
    assert join.feed("end\ud83d") == "end"
    assert join.flush() == "\ufffd"  # a high half held at the end
    assert join.flush() == ""
    assert join.feed("plain ascii") == "plain ascii"


def _surrogate_script(peer):
    """A JavaScript-like server: text sliced by UTF-16 code units."""
    peer.handshake()
    name, payload = peer.recv_event()
    assert name == "text_chat"
    req_id = payload["reqId"]
    peer.send('42/chat,["text_stream",{"reqId":"%s","data":{"text":"a\\ud83d","isFinal":false}}]' % req_id)
    peer.send('42/chat,["text_stream",{"reqId":"%s","data":{"text":"\\ude00b","isFinal":true}}]' % req_id)
    peer.send('42/chat,["message_replied",{"reqId":"%s","data":{"text":"a\\ud83d\\ude00b"}}]' % req_id)
    peer.wait_closed()


def test_a_pair_split_across_websocket_frames_is_joined():
    # 97a72e3: yielded "a\ud83d" and "\ude00b"; Stream.text could not be
    # encoded as UTF-8 and the message_replied text was ignored.
    with ScriptedServer(_surrogate_script) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=5, max_retries=0) as client:
            with client.stream("gpt-4", USER) as stream:
                chunks = list(stream)
    assert chunks == ["a", "\U0001f600b"]
    assert stream.text == "a\U0001f600b"
    stream.text.encode("utf-8")  # never raises
    assert stream.message == {"text": "a\U0001f600b"}


# -- bug 14: transport="auto" ---------------------------------------------------


def test_auto_default_model_does_not_silently_change_bot_after_fallback():
    # 97a72e3: model=None meant samantha on the WebSocket and assistant over HTTP.
    with LocalMyshellServer(ws_refuse_status=403) as server:
        with Myshell(server.base_url, transport="auto", captcha_delay=0, timeout=10, max_retries=0) as client:
            with pytest.raises(UnsupportedModelError, match="http_bot_ids"):
                list(client.generate(None, USER))
            assert client._transport.fell_back
            with pytest.raises(UnsupportedModelError, match="http_bot_ids"):
                client.generate(None, USER)  # now refused before anything is sent
        assert server.http_requests == []
        with Myshell(server.base_url, transport="auto", captcha_delay=0, timeout=10, max_retries=0,
                     http_bot_ids={"samantha": "4738"}) as client:
            assert "".join(client.generate(None, USER))
        assert [r["json"]["botId"] for r in server.http_requests] == ["4738"]


def test_auto_model_without_http_id_fails_before_sending_not_chained_to_the_refusal():
    # 97a72e3: gpt-4 failed mid-iteration with UnsupportedModelError chained
    # onto the WebSocket's connection error.
    with LocalMyshellServer(ws_refuse_status=404) as server:
        with Myshell(server.base_url, transport="auto", captcha_delay=0, timeout=10, max_retries=0) as client:
            with pytest.raises(UnsupportedModelError, match="http_bot_ids") as info:
                list(client.generate("gpt-4", USER))
            error = info.value
            assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
            assert server.http_requests == []


# -- verify= accepts an ssl.SSLContext, on both transports ----------------------


@pytest.mark.parametrize("transport, model", [("websocket", "gpt-4"), ("http", "assistant")])
def test_verify_takes_an_ssl_context(tls, transport, model):
    import ssl

    from myshell_sync import MyshellConnectionError

    server_context, ca_file = tls
    with LocalMyshellServer(ssl_context=server_context) as server:
        trusting = ssl.create_default_context(cafile=ca_file)
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=10,
                     verify=trusting, trust_env=False) as client:
            assert client.base_url.startswith("https://")
            assert "".join(client.generate(model, USER)) == "".join(reply_chunks(model, USER[0]["content"]))
        stranger = ssl.create_default_context()  # does not know the test CA
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=10, max_retries=0,
                     verify=stranger, trust_env=False) as client:
            with pytest.raises(MyshellConnectionError, match="(?i)certificate|TLS"):
                list(client.generate(model, USER))
