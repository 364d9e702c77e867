"""The core call path against the local MyShell server on loopback."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time

import pytest

import myshell_sync
from myshell_sync import (
    AuthenticationError,
    CaptchaRequiredError,
    ClientClosedError,
    ConnectionLostError,
    InsufficientEnergyError,
    Myshell,
    MyshellError,
    models,
)
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import client_sockets, ws_pool

USER = [{"role": "user", "content": "Write a poem about love"}]


def expected(model: str, messages=USER) -> list:
    return reply_chunks(model, myshell_sync.format_prompt(messages))


def test_generate_streams_the_reply_chunk_by_chunk(client):
    gen = client.generate("gpt-4", USER)
    assert inspect.isgenerator(gen)
    chunks = list(gen)
    assert chunks == expected("gpt-4")
    assert len(chunks) > 3


def test_generate_touches_the_network_only_on_first_next(local_server, client):
    gen = client.generate("gpt-4", USER)
    assert local_server.connects == 0
    assert next(gen) == expected("gpt-4")[0]
    assert local_server.connects == 1
    gen.close()


@pytest.mark.parametrize("model", sorted(models))
def test_every_model_reaches_its_bot(client, model):
    assert "".join(client.generate(model, USER)) == "".join(expected(model))


def test_empty_model_is_samantha(client):
    assert "".join(client.generate(None, USER)) == "".join(expected("samantha"))


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


def test_token_from_argument_and_environment(monkeypatch):
    monkeypatch.setenv("MYSHELL_TOKEN", "env-token")
    with LocalMyshellServer(tokens={"env-token", "arg-token"}) as server:
        with Myshell(server.base_url, captcha_delay=0) as client:
            assert "".join(client.generate("gpt-4", USER))
        with Myshell(server.base_url, token="arg-token", captcha_delay=0) as client:
            assert "".join(client.generate("gpt-4", USER))
        assert [a["token"] for a in server.auths] == ["env-token", "arg-token"]


def test_refused_namespace_raises_authentication_error_without_the_token():
    with LocalMyshellServer(tokens={"good"}) as server:
        with Myshell(server.base_url, token="bad-secret-token", captcha_delay=0) as client:
            with pytest.raises(AuthenticationError) as info:
                list(client.generate("gpt-4", USER))
    assert "bad-secret-token" not in str(info.value)
    assert "bad-secret-token" not in repr(client)
    assert info.value.req_id is not None
    assert server.refused == 1  # not retried: a refused token stays refused


def test_energy_budget(local_server, client):
    local_server.energy = 1
    assert "".join(client.generate("gpt-4", USER))
    with pytest.raises(InsufficientEnergyError):
        list(client.generate("gpt-4", USER))
    assert client.energy_info == 0


def test_captcha_rule_without_delay_fails():
    with LocalMyshellServer(captcha_window=30) as server:
        with Myshell(server.base_url, captcha_delay=0) as client:
            with pytest.raises(CaptchaRequiredError):
                list(client.generate("gpt-4", USER))


def test_close_cuts_the_captcha_delay_short(local_server):
    client = Myshell(local_server.base_url, captcha_delay=60)
    errors = []
    waiting = threading.Event()

    def call():
        try:
            gen = client.generate("gpt-4", USER)
            waiting.set()
            list(gen)
        except MyshellError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert waiting.wait(5)
    assert local_server.wait_for(lambda s: s.connects == 1, 5)
    started = time.monotonic()
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert len(errors) == 1 and isinstance(errors[0], ClientClosedError)
    assert local_server.requests == []


def test_drop_mid_reply_fails_fast_with_partial_text(local_server, client):
    local_server.drop_after = 2
    received = []
    started = time.monotonic()
    with pytest.raises(ConnectionLostError) as info:
        for chunk in client.generate("gpt-4", USER):
            received.append(chunk)
    assert time.monotonic() - started < 1.5
    assert received == expected("gpt-4")[:2]
    assert info.value.partial_text == "".join(received)
    assert isinstance(info.value, ConnectionError)
    # the dead connection is never reused: the next call opens a fresh one
    local_server.drop_after = None
    assert "".join(client.generate("gpt-4", USER)) == "".join(expected("gpt-4"))
    assert local_server.connects == 2


def test_garbage_collected_generator_releases_its_request(local_server, client):
    local_server.chunk_delay = 0.05
    gen = client.generate("gpt-4", USER)
    next(gen)
    (conn,) = ws_pool(client).connections()
    assert conn.in_flight == 1
    del gen
    gc.collect()
    assert conn.in_flight == 0


def test_cancellation_leaves_no_thread_or_socket_behind(local_server):
    local_server.chunk_delay = 0.05
    baseline_threads = threading.active_count()
    client = Myshell(local_server.base_url, captcha_delay=0)
    gen = client.generate("gpt-4", USER)
    next(gen)
    assert threading.active_count() == baseline_threads + 2  # a reader and the janitor
    assert client_sockets(local_server.port) == 1
    gen.close()
    client.close()
    assert threading.active_count() == baseline_threads
    assert client_sockets(local_server.port) == 0
    assert local_server.wait_for(lambda s: s.disconnects == 1, 5)


def test_close_wakes_a_waiting_generator(local_server):
    local_server.reply_delay = 30
    client = Myshell(local_server.base_url, captcha_delay=0)
    gen = client.generate("gpt-4", USER)
    errors = []

    def consume():
        try:
            list(gen)
        except MyshellError as exc:
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    assert local_server.wait_for(lambda s: len(s.requests) == 1, 5)
    client.close()
    client.close()  # idempotent
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(errors[0], ClientClosedError)
    assert "client closed" in str(errors[0])
    with pytest.raises(ClientClosedError):
        client.generate("gpt-4", USER)


def test_one_shot_generate_and_class_call_style(local_server):
    baseline = threading.active_count()
    text = "".join(myshell_sync.generate("gpt-4", USER, base_url=local_server.base_url, captcha_delay=0))
    assert text == "".join(expected("gpt-4"))
    gen = Myshell.generate(
        model="gpt-3.5-turbo", messages=USER, base_url=local_server.base_url, captcha_delay=0, timeout=5
    )
    assert inspect.isgenerator(gen)
    assert "".join(gen) == "".join(expected("gpt-3.5-turbo"))
    assert threading.active_count() == baseline
    assert local_server.wait_for(lambda s: s.disconnects == 2, 5)


def test_works_inside_a_running_event_loop(client):
    async def main():
        # a notebook cell: sync code called while a loop is running
        assert asyncio.get_running_loop().is_running()
        return "".join(client.generate("gpt-4", USER))

    assert asyncio.run(main()) == "".join(expected("gpt-4"))


def test_works_from_many_threads_at_once(local_server, client):
    local_server.chunk_delay = 0.01
    results = {}

    def call(i):
        messages = [{"role": "user", "content": f"question {i}"}]
        results[i] = "".join(client.generate(["gpt-4", "samantha"][i % 2], messages))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i in range(8):
        model = ["gpt-4", "samantha"][i % 2]
        assert results[i] == f"{model}: question {i}"


def test_stream_and_chat_expose_metadata(local_server, client):
    with client.stream("gpt-4", USER) as stream:
        chunks = list(stream)
    assert chunks == expected("gpt-4")
    assert stream.message["text"] == "".join(chunks)
    assert stream.req_id == local_server.requests[-1]["reqId"]
    assert 0 <= stream.timings.connect <= stream.timings.first_chunk <= stream.timings.total
    reply = client.chat("samantha", USER)
    assert reply.text == "".join(expected("samantha"))
    assert reply.message["status"] == "DONE"
