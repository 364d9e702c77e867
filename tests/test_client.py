"""The client API against the local server on loopback: generate, stream and
chat, errors and timeouts, cancellation, closing, threads, the one-shot
``generate``; the same behaviour on both transports where both have it.

What only one transport does is in test_websocket_transport.py,
test_http_transport.py and test_auto_transport.py; the connection pool is in
test_pool.py.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
import uuid

import pytest
from helpers import (
    MODEL,
    POEM,
    SilentServer,
    client_sockets,
    eventually,
    expected_chunks,
    make_client,
    run_threads,
    user,
    ws_pool,
)
from scripted import ScriptedServer

import myshell_sync
from myshell_sync import (
    AuthenticationError,
    BadRequestError,
    CaptchaRequiredError,
    ClientClosedError,
    ConnectionLostError,
    ConnectTimeoutError,
    Energy,
    InsufficientEnergyError,
    InvalidTextError,
    Myshell,
    MyshellError,
    MyshellTimeoutError,
    ServerError,
    Timeout,
    UnsupportedModelError,
    models,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks


def requests_seen(server, transport):
    return server.requests if transport == "websocket" else server.http_requests


# ---------------------------------------------------------------------------
# Both transports


def test_streams_the_reply_chunk_by_chunk(local_server, transport):
    model = MODEL[transport]
    with make_client(local_server, transport) as client:
        gen = client.generate(model, user("one two three four"))
        assert inspect.isgenerator(gen)
        chunks = list(gen)
    assert chunks == reply_chunks(model, "one two three four")
    assert len(chunks) > 3


def test_stream_and_chat_expose_metadata(local_server, transport):
    model = MODEL[transport]
    with make_client(local_server, transport) as client:
        with client.stream(model, user("meta data")) as stream:
            chunks = list(stream)
        if transport == "websocket":
            assert stream.req_id == local_server.requests[-1]["reqId"]
        reply = client.chat(model, user("a chat"))
    assert chunks == reply_chunks(model, "meta data")
    assert "".join(chunks) == f"{model}: meta data" == stream.message["text"]
    assert str(uuid.UUID(stream.req_id)) == stream.req_id
    assert 0 <= stream.timings.connect <= stream.timings.first_chunk <= stream.timings.total
    assert reply.text == f"{model}: a chat"
    assert reply.message["status"] == "DONE"


def test_first_chunk_arrives_before_the_bot_is_done(local_server, transport):
    model = MODEL[transport]
    local_server.chunk_delay = 0.25  # 2 s of chunks after the first: time for it to be read

    def replies_in_progress(s):
        return len(s.requests) - len(s.completed) if transport == "websocket" else s.open_http_streams

    with make_client(local_server, transport) as client:
        gen = client.generate(model, user("a b c d e f g h"))
        next(gen)
        assert replies_in_progress(local_server) == 1  # the bot is still producing
        assert list(gen)
    assert local_server.wait_for(lambda s: replies_in_progress(s) == 0, 5)


def test_drop_mid_reply_fails_fast_with_partial_text(local_server, transport):
    model = MODEL[transport]
    local_server.drop_after = 2
    received = []
    started = time.monotonic()
    with make_client(local_server, transport, timeout=30) as client:
        with pytest.raises(ConnectionLostError) as info:
            for chunk in client.generate(model, user("w x y z")):
                received.append(chunk)
        assert time.monotonic() - started < 10  # at once, not at the 30 s timeout
        assert received == reply_chunks(model, "w x y z")[:2]
        assert info.value.partial_text == "".join(received)
        assert isinstance(info.value, ConnectionError)
        # the dead connection is never reused: the next call opens a fresh one
        local_server.drop_after = None
        assert list(client.generate(model, user("w x y z"))) == reply_chunks(model, "w x y z")
    if transport == "websocket":
        assert local_server.connects == 2


def test_server_error_mid_reply(local_server, transport):
    model = MODEL[transport]
    local_server.error_event = "message_error"
    local_server.error_after = 1
    with make_client(local_server, transport) as client:
        with pytest.raises(ServerError) as info:
            list(client.generate(model, user("p q r")))
    assert info.value.partial_text == reply_chunks(model, "p q r")[0]
    assert "simulated" in str(info.value)


def test_captcha_rule_without_delay_fails(transport):
    with LocalMyshellServer(captcha_window=30) as server:
        with make_client(server, transport) as client:
            with pytest.raises(CaptchaRequiredError):
                list(client.generate(MODEL[transport], user("x")))


def test_energy_budget(local_server, transport):
    local_server.energy = 1
    with make_client(local_server, transport) as client:
        assert "".join(client.generate(MODEL[transport], user("x")))
        with pytest.raises(InsufficientEnergyError):
            list(client.generate(MODEL[transport], user("x")))
        energy = client.energy_info  # the WebSocket pushes a number, HTTP the envelope's object
    assert (energy if transport == "websocket" else energy["energy"]) == 0


def test_refused_token_raises_authentication_error_without_the_token(transport):
    with LocalMyshellServer(tokens={"good"}) as server:
        with make_client(server, transport, token="bad-token-value") as client:
            with pytest.raises(AuthenticationError) as info:
                list(client.generate(MODEL[transport], user("x")))
        # not retried: a refused token stays refused
        assert (server.refused if transport == "websocket" else len(server.http_requests)) == 1
    assert "bad-token-value" not in str(info.value)
    assert "bad-token-value" not in repr(client)
    assert info.value.req_id is not None


def test_first_chunk_timeout(local_server, transport):
    local_server.reply_delay = 30
    started = time.monotonic()
    with make_client(local_server, transport, timeout=Timeout(connect=10, first_chunk=0.5, idle=0.5)) as client:
        with pytest.raises(MyshellTimeoutError):
            list(client.generate(MODEL[transport], user("x")))
    assert time.monotonic() - started < 10  # Timeout.first_chunk, not the bot's 30 s


def test_break_cancels_upstream_and_releases_the_connection(local_server, transport):
    model = MODEL[transport]
    local_server.chunk_delay = 0.05
    baseline = threading.active_count()
    with make_client(local_server, transport) as client:
        for _ in client.generate(model, user("a b c d e f g h i j")):
            break
        if transport == "http":
            assert local_server.wait_for(lambda s: s.http_cancelled == 1, 5)
            assert client_sockets(local_server.port) == 0  # not kept for reuse: it was cut mid-body
        # the client still works, and nothing of the abandoned reply leaks in
        local_server.chunk_delay = 0
        assert list(client.generate(model, user("next"))) == reply_chunks(model, "next")
    assert threading.active_count() == baseline
    assert client_sockets(local_server.port) == 0


def test_garbage_collected_generator_cancels(local_server, transport):
    model = MODEL[transport]
    local_server.chunk_delay = 0.05
    with make_client(local_server, transport) as client:
        gen = client.generate(model, user("a b c d e f g h"))
        next(gen)
        if transport == "websocket":
            (conn,) = ws_pool(client).connections()
            assert conn.in_flight == 1
        del gen
        gc.collect()
        if transport == "http":
            assert local_server.wait_for(lambda s: s.http_cancelled == 1, 5)
        else:
            assert conn.in_flight == 0
            assert all(c.in_flight == 0 for c in ws_pool(client).connections())


def test_close_wakes_a_waiting_generator(local_server, transport):
    local_server.reply_delay = 30
    client = make_client(local_server, transport)
    gen = client.generate(MODEL[transport], user("x"))
    errors = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(MyshellError, list, gen)))
    thread.start()
    assert local_server.wait_for(lambda s: len(requests_seen(s, transport)) == 1, 5)
    client.close()
    client.close()  # idempotent
    thread.join(5)
    assert not thread.is_alive()
    assert errors[0].type is ClientClosedError
    assert "client closed" in str(errors[0].value)
    with pytest.raises(ClientClosedError):
        client.generate(MODEL[transport], user("x"))


def test_many_threads_share_one_client(local_server, transport):
    model = MODEL[transport]
    local_server.chunk_delay = 0.002
    results = {}

    def ask(i):
        results[i] = "".join(client.generate(model, user(f"thread {i}")))

    with make_client(local_server, transport) as client:
        run_threads([threading.Thread(target=ask, args=(i,)) for i in range(16)], 30)
    assert results == {i: f"{model}: thread {i}" for i in range(16)}


# ---------------------------------------------------------------------------
# The API: arguments, models, the token, energy(), the one-shot generate


def test_generate_touches_the_network_only_on_first_next(local_server, client):
    gen = client.generate("gpt-4", POEM)
    assert local_server.connects == 0
    assert next(gen) == expected_chunks("gpt-4")[0]
    assert local_server.connects == 1
    gen.close()


@pytest.mark.parametrize("model", sorted(models))
def test_every_model_reaches_its_bot(client, model):
    assert "".join(client.generate(model, POEM)) == "".join(expected_chunks(model))


def test_empty_model_is_samantha(client):
    assert "".join(client.generate(None, POEM)) == "".join(expected_chunks("samantha"))


def test_conversation_history_is_sent_as_one_prompt(local_server, client):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "A poem?"},
    ]
    text = "".join(client.generate("gpt-4", messages))
    assert text == "gpt-4: System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: A poem?\nAssistant:"
    assert local_server.requests[-1]["text"] == myshell_sync.format_prompt(messages)


def test_generate_checks_arguments_before_returning():
    client = myshell_sync.Myshell("http://127.0.0.1:9", captcha_delay=0)
    with client:
        with pytest.raises(UnsupportedModelError):
            client.generate("nope", [{"role": "user", "content": "x"}])
        with pytest.raises(ValueError):
            client.generate("gpt-4", [])
        with pytest.raises(TypeError, match="proxy"):
            client.generate("gpt-4", [{"role": "user", "content": "x"}], proxy="http://x:1")
        with pytest.raises(UnsupportedModelError):
            myshell_sync.generate("nope", [{"role": "user", "content": "x"}])
        with pytest.raises(UnsupportedModelError):
            myshell_sync.Myshell.generate(model="nope", messages=[{"role": "user", "content": "x"}])


def test_token_from_argument_and_environment(monkeypatch):
    monkeypatch.setenv("MYSHELL_TOKEN", "env-token")
    with LocalMyshellServer(tokens={"env-token", "arg-token"}) as server:
        with Myshell(server.base_url, captcha_delay=0) as client:
            assert "".join(client.generate("gpt-4", POEM))
        with Myshell(server.base_url, token="arg-token", captcha_delay=0) as client:
            assert "".join(client.generate("gpt-4", POEM))
        assert [a["token"] for a in server.auths] == ["env-token", "arg-token"]


def test_energy_helper():
    with LocalMyshellServer(tokens={"tok"}, energy=7) as server:
        with make_client(server, "websocket", token="tok") as client:
            assert client.energy() == Energy(energy=7, daily_energy=client.energy().daily_energy)
        with make_client(server, "websocket", token=None) as client:
            with pytest.raises(AuthenticationError, match="token"):
                client.energy()


def test_one_shot_generate_and_class_call_style(local_server):
    baseline = threading.active_count()
    text = "".join(myshell_sync.generate("gpt-4", POEM, base_url=local_server.base_url, captcha_delay=0))
    assert text == "".join(expected_chunks("gpt-4"))
    gen = Myshell.generate(
        model="gpt-3.5-turbo", messages=POEM, base_url=local_server.base_url, captcha_delay=0, timeout=5
    )
    assert inspect.isgenerator(gen)
    assert "".join(gen) == "".join(expected_chunks("gpt-3.5-turbo"))
    assert threading.active_count() == baseline
    assert local_server.wait_for(lambda s: s.disconnects == 2, 5)


def test_works_inside_a_running_event_loop(client):
    async def main():
        # a notebook cell: sync code called while a loop is running
        assert asyncio.get_running_loop().is_running()
        return "".join(client.generate("gpt-4", POEM))

    assert asyncio.run(main()) == "".join(expected_chunks("gpt-4"))


def test_cancellation_leaves_no_thread_or_socket_behind(local_server):
    local_server.chunk_delay = 0.05
    baseline_threads = threading.active_count()
    client = Myshell(local_server.base_url, captcha_delay=0)
    gen = client.generate("gpt-4", POEM)
    next(gen)
    assert threading.active_count() == baseline_threads + 2  # a reader and the janitor
    assert client_sockets(local_server.port) == 1
    gen.close()
    client.close()
    assert threading.active_count() == baseline_threads
    assert client_sockets(local_server.port) == 0
    assert local_server.wait_for(lambda s: s.disconnects == 1, 5)


# ---------------------------------------------------------------------------
# Deadlines, first_chunk, cross-thread close, busy bots, surrogates, auto, verify=SSLContext (issue 10 regressions)


USER = [{"role": "user", "content": "hello there friend"}]


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
        with Myshell(
            f"http://127.0.0.1:{server.port}", captcha_delay=0, max_retries=5, timeout=Timeout(connect=10, total=1)
        ) as client:
            with pytest.raises(ConnectTimeoutError, match="Timeout.total of 1s"):
                list(client.generate("gpt-4", USER))
            assert len(server.accepted) == 1  # no retry once the total ran out


def test_a_connect_timeout_after_retries_says_the_limit_is_per_attempt():
    # --timeout 1 took 4.4 s (three attempts and their backoff) while the
    # message named only the 1 s: it now says which attempt ran out.
    with SilentServer() as server:
        with Myshell(server.base_url, captcha_delay=0, max_retries=2, timeout=Timeout(connect=0.3)) as client:
            with pytest.raises(ConnectTimeoutError) as info:
                list(client.generate("gpt-4", USER))
        assert eventually(lambda: len(server.accepted) == 3)
    error = info.value
    assert "ran out of Timeout.connect of 0.3s (per attempt; attempt 3 of 3);" in str(error)
    assert (error.limit, error.limit_seconds) == ("connect", 0.3)


def test_a_single_attempt_names_no_attempts():
    with SilentServer() as server:
        with Myshell(server.base_url, captcha_delay=0, max_retries=0, timeout=Timeout(connect=0.3)) as client:
            with pytest.raises(ConnectTimeoutError) as info:
                list(client.generate("gpt-4", USER))
    assert "ran out of Timeout.connect of 0.3s; check the server" in str(info.value)
    assert "attempt" not in str(info.value)


@pytest.mark.parametrize("transport", ["websocket", "http", "openapi"])
def test_a_lone_surrogate_is_refused_before_anything_is_sent(local_server, transport):
    # It used to raise UnicodeEncodeError from the request signature.
    options = {"api_key": next(iter(local_server.api_keys))} if transport == "openapi" else {}
    with make_client(local_server, transport, **options) as client:
        for messages in (
            [{"role": "user", "content": "caf\u00e9 \udcff"}],
            [{"role": "system", "content": "ok"}, {"role": "user", "content": "half \ud83d"}],
        ):
            with pytest.raises(InvalidTextError, match=r"is not valid Unicode text: it holds a lone surrogate") as info:
                client.generate(None, messages)
            assert isinstance(info.value, ValueError) and isinstance(info.value, BadRequestError)
        assert "messages[1]['content']" in str(info.value) and "'\\ud83d' at index 5" in str(info.value)
        assert "".join(client.generate(None, [{"role": "user", "content": "caf\u00e9 \U0001f600"}]))
    assert len(local_server.requests) + len(local_server.http_requests) + len(local_server.openapi_requests) == 1


# -- bug 5: first_chunk means the first text on every transport -----------------


@pytest.mark.parametrize("transport, model", [("websocket", "gpt-4"), ("http", "assistant")])
def test_first_chunk_waits_for_text_and_acknowledgements_do_not_end_it(transport, model):
    # 97a72e3: over the WebSocket, message_sent (sent at once) ended the
    # first_chunk wait, so a bot thinking longer than Timeout.idle failed
    # with an idle timeout; HTTP succeeded.
    with LocalMyshellServer(reply_delay=2) as server:
        timeout = Timeout(connect=10, first_chunk=30, idle=1)  # idle < the bot's delay; 1 s between chunks
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
        with Myshell(
            server.base_url,
            transport="auto",
            captcha_delay=0,
            timeout=10,
            max_retries=0,
            http_bot_ids={"samantha": "4738"},
        ) as client:
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
        with Myshell(
            server.base_url, transport=transport, captcha_delay=0, timeout=10, verify=trusting, trust_env=False
        ) as client:
            assert client.base_url.startswith("https://")
            assert "".join(client.generate(model, USER)) == "".join(reply_chunks(model, USER[0]["content"]))
        stranger = ssl.create_default_context()  # does not know the test CA
        with Myshell(
            server.base_url,
            transport=transport,
            captcha_delay=0,
            timeout=10,
            max_retries=0,
            verify=stranger,
            trust_env=False,
        ) as client:
            with pytest.raises(MyshellConnectionError, match="(?i)certificate|TLS"):
                list(client.generate(model, USER))
