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

import myshell_sync
from myshell_sync import (
    AuthenticationError,
    CaptchaRequiredError,
    ClientClosedError,
    ConnectionLostError,
    Energy,
    InsufficientEnergyError,
    Myshell,
    MyshellError,
    MyshellTimeoutError,
    ServerError,
    Timeout,
    UnsupportedModelError,
    models,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import MODEL, POEM, client_sockets, expected_chunks, make_client, run_threads, user, ws_pool


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
    local_server.chunk_delay = 0.05
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
    with make_client(local_server, transport) as client:
        with pytest.raises(ConnectionLostError) as info:
            for chunk in client.generate(model, user("w x y z")):
                received.append(chunk)
        assert time.monotonic() - started < 1.5
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
    with make_client(local_server, transport, timeout=Timeout(connect=5, first_chunk=0.5, idle=0.5)) as client:
        with pytest.raises(MyshellTimeoutError):
            list(client.generate(MODEL[transport], user("x")))
    assert time.monotonic() - started < 3


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
