"""The in-process OpenAI-compatible client, on every transport, against the local server.

Shapes are checked with the official ``openai`` package's own models
(``model_validate`` of our ``model_dump()``), not with our reading of them.
"""

from __future__ import annotations

import logging
import time

import pytest
from helpers import MODELS, eventually, expected_reply

from myshell_sync import BadRequestError, Myshell, MyshellError, UnsupportedModelError
from myshell_sync.local import LOCAL_API_KEY, LocalMyshellServer
from myshell_sync.openai_api import ChunkStream, OpenAI, estimate_tokens

TRANSPORTS = ["websocket", "http", "openapi", "auto"]
MODEL = MODELS
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write a poem about love"}]


def expected(transport: str, messages=HELLO) -> str:
    """The local server's reply (its bots echo the prompt, see myshell_sync.local)."""
    return expected_reply(transport, messages)


def openai_client(server: LocalMyshellServer, transport: str, **options) -> OpenAI:
    extra = {"api_key": LOCAL_API_KEY} if transport == "openapi" else {}
    return OpenAI(base_url=server.base_url, transport=transport, captcha_delay=0, timeout=10, **extra, **options)


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    return request.param


@pytest.fixture
def ai(local_server, transport):
    with openai_client(local_server, transport) as client:
        yield client


def test_a_completion_is_openais_chat_completion(ai, transport):
    types = pytest.importorskip("openai.types.chat")
    completion = ai.chat.completions.create(model=MODEL[transport], messages=HELLO)
    parsed = types.ChatCompletion.model_validate(completion.model_dump())
    assert parsed.choices[0].message.content == expected(transport)
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == MODEL[transport]
    # seconds, not milliseconds (a day either side of now)
    assert abs(completion.created - time.time()) < 86400
    prompt = sum(estimate_tokens(m["content"]) + 4 for m in HELLO)
    assert completion.usage.prompt_tokens == prompt
    assert completion.usage.completion_tokens == estimate_tokens(expected(transport))
    assert completion.usage.total_tokens == prompt + completion.usage.completion_tokens
    assert completion.to_dict() == completion.model_dump()


def test_a_stream_is_openais_chunks(ai, transport):
    types = pytest.importorskip("openai.types.chat")
    with ai.chat.completions.create(model=MODEL[transport], messages=HELLO, stream=True) as stream:
        chunks = [types.ChatCompletionChunk.model_validate(chunk.model_dump()) for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected(transport)
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert chunks[-1].choices[0].delta.content is None
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    assert all(c.usage is None for c in chunks)
    if transport != "openapi":  # the key-based API answers whole: one content chunk
        assert len(chunks) > 3


def test_include_usage_adds_a_last_chunk_with_empty_choices(ai, transport):
    types = pytest.importorskip("openai.types.chat")
    stream = ai.chat.completions.create(
        model=MODEL[transport], messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [types.ChatCompletionChunk.model_validate(chunk.model_dump()) for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == estimate_tokens(expected(transport))


def test_the_json_the_server_would_send_leaves_none_out(ai, transport):
    stream = ai.chat.completions.create(model=MODEL[transport], messages=HELLO, stream=True)
    first = next(stream).model_dump(exclude_none=True)
    stream.close()
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}}]
    assert "usage" not in first and "system_fingerprint" not in first


def test_settings_are_sent_where_the_transport_can_and_ignored_elsewhere(local_server, transport, caplog):
    caplog.set_level(logging.DEBUG, logger="myshell_sync")
    with openai_client(local_server, transport) as ai:
        for _ in range(2):
            completion = ai.chat.completions.create(
                model=MODEL[transport],
                messages=HELLO,
                temperature=0.2,
                top_p=0.5,
                max_tokens=64,
                user="someone",
                seed=7,
            )
            assert completion.choices[0].message.content == expected(transport)
    if transport == "openapi":
        sent = local_server.openapi_requests[-1]["input"]
        assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.2, 0.5, 64)
    ignored = [r.getMessage() for r in caplog.records if "accepted and ignored" in r.getMessage()]
    # each ignored name logged once per process, not once per call
    assert len(ignored) == len(set(ignored))


@pytest.mark.parametrize(
    "arguments, param",
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/i.png"}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"temperature": 3}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": ""}, "model"),
    ],
)
def test_what_myshell_cannot_do_is_refused_before_anything_is_sent(local_server, arguments, param):
    with openai_client(local_server, "http") as ai:
        call = {"model": "assistant", "messages": HELLO, **arguments}
        with pytest.raises(BadRequestError) as raised:
            ai.chat.completions.create(**call)
    assert raised.value.param == param
    assert isinstance(raised.value, ValueError)
    assert param.partition("[")[0].partition(".")[0] in str(raised.value)
    assert local_server.http_requests == []


def test_text_parts_are_joined(ai, transport):
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "Write a poem "}, {"type": "text", "text": "about love"}]}
    ]
    completion = ai.chat.completions.create(model=MODEL[transport], messages=parts)
    assert completion.choices[0].message.content == expected(
        transport, [{"role": "user", "content": "Write a poem about love"}]
    )


# Stop strings early in the reply ("User: " is its 5th chunk of 11, "Write " its 6th), and
# 0.3 s between chunks: the cancel reaches the server long before the bot would be done.
@pytest.mark.parametrize("stop", ["User", ["zzz", "rite"]])
def test_stop_cuts_the_reply_and_cancels_the_rest_upstream(stop):
    with LocalMyshellServer(chunk_delay=0.3) as server:
        with openai_client(server, "http") as ai:
            full = expected("http")
            first = min(full.find(s) for s in ([stop] if isinstance(stop, str) else stop) if s in full)
            completion = ai.chat.completions.create(model="assistant", messages=HELLO, stop=stop)
            assert completion.choices[0].message.content == full[:first]
            assert completion.choices[0].finish_reason == "stop"
            assert server.wait_for(lambda s: s.http_cancelled == 1, timeout=10)
            assert not [r for r in server.completed if r]


def test_a_stream_closed_early_cancels_upstream():
    with LocalMyshellServer(chunk_delay=0.05) as server:
        with openai_client(server, "http") as ai:
            stream = ai.chat.completions.create(model="assistant", messages=HELLO, stream=True)
            assert isinstance(stream, ChunkStream)
            next(stream), next(stream)
            stream.close()
            assert server.wait_for(lambda s: s.http_cancelled == 1, timeout=10)
            assert list(stream) == []


def test_models_are_the_transports(ai, transport):
    types = pytest.importorskip("openai.types")
    listed = ai.models.list()
    names = [model.id for model in listed]
    assert MODEL[transport] in names and names == list(ai.client.model_names)
    for model in listed.data:
        types.Model.model_validate(model.model_dump())
    assert ai.models.retrieve(MODEL[transport]).id == MODEL[transport]
    with pytest.raises(UnsupportedModelError, match="models.list"):
        ai.models.retrieve("no-such-model")


def test_an_unknown_model_raises_before_anything_is_sent(local_server):
    with openai_client(local_server, "http") as ai:
        with pytest.raises(UnsupportedModelError):
            ai.chat.completions.create(model="no-such-model", messages=HELLO, stream=True)
    assert local_server.http_requests == []


def test_an_upstream_error_raises_at_create_typed(transport):
    switch = {
        "openapi": {"openapi_status": 503},
        "http": {"http_status": 503},
        "websocket": {"error_event": "message_error"},
        "auto": {"error_event": "message_error"},
    }
    with LocalMyshellServer(**switch[transport]) as server:
        with openai_client(server, transport, max_retries=0) as ai:
            with pytest.raises(MyshellError):
                ai.chat.completions.create(model=MODEL[transport], messages=HELLO, stream=True)


def test_a_given_client_is_left_open_an_own_one_is_closed(local_server):
    with Myshell(local_server.base_url, transport="http", captcha_delay=0) as myshell:
        with OpenAI(myshell) as ai:
            ai.chat.completions.create(model="assistant", messages=HELLO)
        assert not myshell.closed
    ai = openai_client(local_server, "http")
    ai.close()
    assert ai.client.closed
    with pytest.raises(TypeError):
        OpenAI(myshell, transport="http")


def test_per_call_timeout_is_the_clients_timeout_error():
    with LocalMyshellServer(reply_delay=30) as server:
        with openai_client(server, "http") as ai:
            with pytest.raises(MyshellError, match="first_chunk|total"):
                ai.chat.completions.create(model="assistant", messages=HELLO, timeout=0.5)
            assert eventually(lambda: server.open_http_streams == 0, 10)
