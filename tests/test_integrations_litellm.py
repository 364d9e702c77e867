"""``MyshellLLM`` with the real ``litellm``, on every transport, against the
local server: ``litellm.completion`` streaming and not, history, settings,
stop strings, the async calls, registration, and errors (litellm's own
classes, with our typed error in the chain).

litellm keeps a process-wide pool of logging threads that it never stops
(``litellm.litellm_core_utils.thread_pool_executor.executor``): the thread
check of this module leaves out those threads, and only those.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator

import pytest

pytestmark = [
    pytest.mark.extras,  # not a core test (see conftest.py)
    # litellm's own pydantic models warn about their TypedDicts (not ours to fix)
    pytest.mark.filterwarnings("ignore:Item.* the `ReadOnly` qualifier:UserWarning"),
]
# litellm fetches a price list from the internet on import unless told to use its own copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm", reason="MyshellLLM is tested with litellm (test extra, Python 3.10+)")

from helpers import MODELS, expected_reply  # noqa: E402

from myshell_sync import (  # noqa: E402
    AuthenticationError,
    InsufficientEnergyError,
    UnsupportedModelError,
    format_prompt,
)
from myshell_sync.integrations.litellm import MyshellLLM, myshell_error, register  # noqa: E402
from myshell_sync.local import LOCAL_API_KEY, LocalMyshellServer, reply_chunks  # noqa: E402

PREFIX = {"websocket": "myshell", "http": "myshell-http", "openapi": "myshell-openapi"}
MODEL = MODELS
POEM = "Write a poem about love"
SYSTEM = {"role": "system", "content": "Be brief."}


def litellm_threads() -> set:
    from litellm.litellm_core_utils.thread_pool_executor import executor

    return set(getattr(executor, "_threads", ()))


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """conftest.py's check, less litellm's own logging pool (it lives as long as the process)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10
    leaked = []
    for thread in set(threading.enumerate()) - before - litellm_threads():
        thread.join(max(deadline - time.monotonic(), 0))
        if thread.is_alive():
            leaked.append(thread.name)
    assert not leaked, f"threads left running: {leaked}"


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def expected(transport: str, messages: list[dict[str, str]]) -> str:
    return expected_reply(transport, messages)


def model_of(transport: str) -> str:
    return f"{PREFIX[transport]}/{MODEL[transport]}"


def key_of(transport: str) -> dict[str, str]:
    return {"api_key": LOCAL_API_KEY} if transport == "openapi" else {}


@pytest.fixture
def providers(monkeypatch):
    """Restore litellm's provider map and close what the test registered."""
    monkeypatch.delenv("MYSHELL_TOKEN", raising=False)
    monkeypatch.delenv("MYSHELL_API_KEY", raising=False)
    saved = list(litellm.custom_provider_map)
    handlers: list[MyshellLLM] = []
    yield handlers
    for item in litellm.custom_provider_map:
        if isinstance(item.get("custom_handler"), MyshellLLM):
            item["custom_handler"].close()
    for handler in handlers:
        handler.close()
    litellm.custom_provider_map = saved


@pytest.fixture
def registered(local_server, providers):
    register(base_url=local_server.base_url, captcha_delay=0, timeout=10)
    return local_server


@pytest.fixture(params=["websocket", "http", "openapi"])
def transport(request) -> str:
    return request.param


def test_completion_answers_whole(registered, transport):
    messages = [SYSTEM, user("hi")]
    response = litellm.completion(model=model_of(transport), messages=messages, **key_of(transport))
    assert response.choices[0].message.content == expected(transport, messages)
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].finish_reason == "stop"


def test_completion_streams(registered, transport):
    stream = litellm.completion(model=model_of(transport), messages=[user(POEM)], stream=True, **key_of(transport))
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == expected(transport, [user(POEM)])
    if transport != "openapi":  # the key-based API answers whole
        assert sum(1 for chunk in chunks if chunk.choices[0].delta.content) > 4
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_history_is_sent(registered, transport):
    messages = [
        SYSTEM,
        user("one"),
        {"role": "assistant", "content": "reply one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
    ]
    sent = messages[:3] + [user("two")]
    response = litellm.completion(model=model_of(transport), messages=messages, **key_of(transport))
    assert response.choices[0].message.content == expected(transport, sent)
    if transport == "openapi":
        assert registered.openapi_requests[-1]["input"]["memory"] == sent[1:3]
    elif transport == "websocket":
        assert registered.requests[-1]["text"] == format_prompt(sent)


def test_settings_reach_the_key_based_api_and_are_ignored_elsewhere(registered):
    litellm.completion(
        model=model_of("openapi"),
        messages=[user("hi")],
        api_key=LOCAL_API_KEY,
        temperature=0.2,
        top_p=0.8,
        max_tokens=30,
    )
    sent = registered.openapi_requests[-1]["input"]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.2, 0.8, 30)
    response = litellm.completion(model=model_of("websocket"), messages=[user("hi")], temperature=0.2)
    assert response.choices[0].message.content == "gpt-4: hi"


def test_stop_strings_cut_the_reply(registered, transport):
    full = expected(transport, [user("one two three")])
    response = litellm.completion(
        model=model_of(transport), messages=[user("one two three")], stop=["two"], **key_of(transport)
    )
    assert response.choices[0].message.content == full.split("two")[0]
    stream = litellm.completion(
        model=model_of(transport), messages=[user("one two three")], stop="thr", stream=True, **key_of(transport)
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == full.split("thr")[0]


def test_closing_a_stream_cancels_the_reply_upstream(providers):
    with LocalMyshellServer(chunk_delay=0.2) as server:
        register(["http"], base_url=server.base_url, timeout=10)
        stream = litellm.completion(model="myshell-http/assistant", messages=[user(POEM)], stream=True)
        assert next(iter(stream)).choices[0].delta.content == "assistant: "
        stream.close()
        assert server.wait_for(lambda s: s.http_cancelled == 1, 10)


def test_the_async_calls_run_the_sync_ones_in_threads(registered, transport):
    async def main():
        whole = await litellm.acompletion(model=model_of(transport), messages=[user("hi")], **key_of(transport))
        stream = await litellm.acompletion(
            model=model_of(transport), messages=[user(POEM)], stream=True, **key_of(transport)
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
        return whole.choices[0].message.content, text

    assert asyncio.run(main()) == (expected(transport, [user("hi")]), expected(transport, [user(POEM)]))


def test_the_one_line_registration_and_register_keeping_other_providers(local_server, providers):
    handler = MyshellLLM(base_url=local_server.base_url, captcha_delay=0)
    providers.append(handler)
    litellm.custom_provider_map = [{"provider": "myshell", "custom_handler": handler}]
    response = litellm.completion(model="myshell/gpt-4", messages=[user("hi")])
    assert response.choices[0].message.content == "gpt-4: hi"
    used = handler.client()  # the client that call used
    assert not used.closed
    other = {"provider": "someone-else", "custom_handler": litellm.CustomLLM()}
    litellm.custom_provider_map.append(other)
    handlers = register(base_url=local_server.base_url, captcha_delay=0)
    assert sorted(handlers) == ["myshell", "myshell-http", "myshell-openapi"]
    assert other in litellm.custom_provider_map
    assert [item["provider"] for item in litellm.custom_provider_map].count("myshell") == 1
    assert used.closed  # register() closed the handler it replaced
    response = litellm.completion(model="myshell-http/assistant", messages=[user("hi")], api_base=local_server.base_url)
    assert response.choices[0].message.content == "assistant: hi"


def test_a_token_or_key_comes_from_api_key(providers):
    with LocalMyshellServer(tokens={"token-1"}) as server:
        register(["websocket"], base_url=server.base_url, captcha_delay=0, timeout=10)
        with pytest.raises(litellm.AuthenticationError) as caught:
            litellm.completion(model="myshell/gpt-4", messages=[user("hi")])
        assert isinstance(myshell_error(caught.value), AuthenticationError)
        response = litellm.completion(model="myshell/gpt-4", messages=[user("hi")], api_key="token-1")
        assert response.choices[0].message.content == "gpt-4: hi"
        assert server.auths[-1]["token"] == "token-1"
        for item in litellm.custom_provider_map:
            item["custom_handler"].close()


def test_errors_are_litellms_with_our_typed_error_in_the_chain(providers):
    with LocalMyshellServer(energy=0) as server:
        register(["websocket"], base_url=server.base_url, captcha_delay=0, timeout=10)
        for stream in (False, True):
            with pytest.raises(Exception) as caught:
                litellm.completion(model="myshell/gpt-4", messages=[user("hi")], stream=stream)
            assert isinstance(caught.value, tuple(litellm.LITELLM_EXCEPTION_TYPES))
            assert caught.value.status_code == 402
            assert isinstance(myshell_error(caught.value), InsufficientEnergyError)
        with pytest.raises(litellm.NotFoundError) as caught:
            litellm.completion(model="myshell/no-such-model", messages=[user("hi")])
        assert isinstance(myshell_error(caught.value), UnsupportedModelError)
        for item in litellm.custom_provider_map:
            item["custom_handler"].close()


def test_an_error_in_mid_stream_surfaces_after_the_text_before_it(providers):
    with LocalMyshellServer(error_event="no_enough_energy", error_after=2) as server:
        register(["websocket"], base_url=server.base_url, captcha_delay=0, timeout=10)
        stream = litellm.completion(model="myshell/gpt-4", messages=[user(POEM)], stream=True)
        got = []
        with pytest.raises(Exception) as caught:
            for chunk in stream:
                got.append(chunk.choices[0].delta.content)
        assert "".join(got) == "".join(reply_chunks("gpt-4", POEM)[:2])
        error = myshell_error(caught.value)
        assert isinstance(error, InsufficientEnergyError) and error.partial_text == "".join(got)
        for item in litellm.custom_provider_map:
            item["custom_handler"].close()


def test_the_key_based_api_without_a_key_and_refused_parameters(registered):
    with pytest.raises(litellm.AuthenticationError) as caught:
        litellm.completion(model=model_of("openapi"), messages=[user("hi")])
    assert "MYSHELL_API_KEY" in str(caught.value)
    with pytest.raises(litellm.BadRequestError, match="tools"):
        litellm.completion(
            model=model_of("websocket"),
            messages=[user("hi")],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    with pytest.raises(litellm.BadRequestError, match="tool"):
        litellm.completion(
            model=model_of("websocket"), messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}]
        )
    assert registered.requests == [] and registered.openapi_requests == []
