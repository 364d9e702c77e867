"""The same behaviour on both transports, and energy()."""

from __future__ import annotations

import gc
import threading
import time

import pytest

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
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import client_sockets, ws_pool

# The model and the bot name the local server answers with, per transport.
MODEL = {"websocket": ("gpt-4", "gpt-4"), "http": ("assistant", "assistant")}


def user(text):
    return [{"role": "user", "content": text}]


@pytest.fixture(params=["websocket", "http"])
def transport(request):
    return request.param


@pytest.fixture
def server():
    with LocalMyshellServer() as server:
        yield server


def make_client(server, transport, **options):
    options.setdefault("captcha_delay", 0)
    options.setdefault("timeout", 10)
    return Myshell(server.base_url, transport=transport, **options)


def requests_seen(server, transport):
    return server.requests if transport == "websocket" else server.http_requests


def test_streams_the_reply_chunk_by_chunk(server, transport):
    model, name = MODEL[transport]
    with make_client(server, transport) as client:
        chunks = list(client.generate(model, user("one two three four")))
    assert chunks == reply_chunks(name, "one two three four")


def test_stream_metadata(server, transport):
    model, name = MODEL[transport]
    with make_client(server, transport) as client:
        with client.stream(model, user("meta data")) as stream:
            text = "".join(stream)
    assert text == f"{name}: meta data" == stream.message["text"]
    assert 0 <= stream.timings.connect <= stream.timings.first_chunk <= stream.timings.total


def test_first_chunk_arrives_before_the_bot_is_done(server, transport):
    model, _ = MODEL[transport]
    server.chunk_delay = 0.05
    def replies_in_progress(s):
        return len(s.requests) - len(s.completed) if transport == "websocket" else s.open_http_streams

    with make_client(server, transport) as client:
        gen = client.generate(model, user("a b c d e f g h"))
        next(gen)
        assert replies_in_progress(server) == 1  # the bot is still producing
        assert list(gen)
    assert server.wait_for(lambda s: replies_in_progress(s) == 0, 5)


def test_drop_mid_reply_fails_fast_with_partial_text(server, transport):
    model, name = MODEL[transport]
    server.drop_after = 2
    received = []
    started = time.monotonic()
    with make_client(server, transport) as client:
        with pytest.raises(ConnectionLostError) as info:
            for chunk in client.generate(model, user("w x y z")):
                received.append(chunk)
    assert time.monotonic() - started < 1.5
    assert received == reply_chunks(name, "w x y z")[:2]
    assert info.value.partial_text == "".join(received)


def test_server_error_mid_reply(server, transport):
    model, name = MODEL[transport]
    server.error_event = "message_error"
    server.error_after = 1
    with make_client(server, transport) as client:
        with pytest.raises(ServerError) as info:
            list(client.generate(model, user("p q r")))
    assert info.value.partial_text == reply_chunks(name, "p q r")[0]
    assert "simulated" in str(info.value)


def test_captcha_rule(transport):
    with LocalMyshellServer(captcha_window=30) as server:
        with make_client(server, transport) as client:
            with pytest.raises(CaptchaRequiredError):
                list(client.generate(MODEL[transport][0], user("x")))


def test_energy_budget(server, transport):
    server.energy = 1
    with make_client(server, transport) as client:
        assert "".join(client.generate(MODEL[transport][0], user("x")))
        with pytest.raises(InsufficientEnergyError):
            list(client.generate(MODEL[transport][0], user("x")))


def test_refused_token(transport):
    with LocalMyshellServer(tokens={"good"}) as server:
        with make_client(server, transport, token="bad-token-value") as client:
            with pytest.raises(AuthenticationError) as info:
                list(client.generate(MODEL[transport][0], user("x")))
    assert "bad-token-value" not in str(info.value)


def test_first_chunk_timeout(server, transport):
    server.reply_delay = 30
    started = time.monotonic()
    with make_client(server, transport, timeout=Timeout(connect=5, first_chunk=0.5, idle=0.5)) as client:
        with pytest.raises(MyshellTimeoutError):
            list(client.generate(MODEL[transport][0], user("x")))
    assert time.monotonic() - started < 3


def test_break_cancels_upstream_and_releases_the_connection(server, transport):
    model, name = MODEL[transport]
    server.chunk_delay = 0.05
    baseline = threading.active_count()
    with make_client(server, transport) as client:
        for _ in client.generate(model, user("a b c d e f g h i j")):
            break
        if transport == "http":
            assert server.wait_for(lambda s: s.http_cancelled == 1, 5)
            assert client_sockets(server.port) == 0  # not kept for reuse: it was cut mid-body
        # the client still works, and nothing of the abandoned reply leaks in
        server.chunk_delay = 0
        assert list(client.generate(model, user("next"))) == reply_chunks(name, "next")
    assert threading.active_count() == baseline
    assert client_sockets(server.port) == 0


def test_garbage_collected_generator_cancels(server, transport):
    model, _ = MODEL[transport]
    server.chunk_delay = 0.05
    with make_client(server, transport) as client:
        gen = client.generate(model, user("a b c d e f g h"))
        next(gen)
        del gen
        gc.collect()
        if transport == "http":
            assert server.wait_for(lambda s: s.http_cancelled == 1, 5)
        else:
            assert all(c.in_flight == 0 for c in ws_pool(client).connections())


def test_close_wakes_a_waiting_generator(server, transport):
    server.reply_delay = 30
    client = make_client(server, transport)
    gen = client.generate(MODEL[transport][0], user("x"))
    errors = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(MyshellError, list, gen)))
    thread.start()
    assert server.wait_for(lambda s: len(requests_seen(s, transport)) == 1, 5)
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert errors[0].type is ClientClosedError


def test_many_threads_share_one_client(server, transport):
    model, name = MODEL[transport]
    server.chunk_delay = 0.002
    results = {}

    def call(i):
        results[i] = "".join(client.generate(model, user(f"thread {i}")))

    with make_client(server, transport) as client:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert results == {i: f"{name}: thread {i}" for i in range(16)}


# -- energy() -----------------------------------------------------------------


def test_energy_helper(server):
    with LocalMyshellServer(tokens={"tok"}, energy=7) as server:
        with make_client(server, "websocket", token="tok") as client:
            assert client.energy() == Energy(energy=7, daily_energy=client.energy().daily_energy)
        with make_client(server, "websocket", token=None) as client:
            with pytest.raises(AuthenticationError, match="token"):
                client.energy()
