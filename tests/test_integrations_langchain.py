"""``ChatMyShell`` with the real ``langchain-core``, on every transport,
against the local server: ``invoke``, ``stream``, ``batch`` (8 prompts in
threads, every reply checked), a ``prompt | model | StrOutputParser()``
chain, history, settings, stop strings, secrets and typed errors.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)
pytest.importorskip("langchain_core", reason="ChatMyShell is tested with langchain-core (test extra, Python 3.10+)")

from helpers import MODELS, expected_reply  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from myshell_sync import CaptchaRequiredError, Myshell, UnsupportedModelError, format_prompt  # noqa: E402
from myshell_sync.integrations.langchain import ChatMyShell  # noqa: E402
from myshell_sync.local import LOCAL_API_KEY, LocalMyshellServer, openapi_reply  # noqa: E402

MODEL = MODELS
POEM = "Write a poem about love"


def expected(transport: str, messages: list[dict[str, str]]) -> str:
    """The local server's reply (its bots echo the prompt, see myshell_sync.local)."""
    return expected_reply(transport, messages)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def make(server: LocalMyshellServer, transport: str, **fields) -> ChatMyShell:
    options = {
        "model": MODEL[transport],
        "transport": transport,
        "base_url": server.base_url,
        "captcha_delay": 0,
        "timeout": 10,
    }
    if transport == "openapi":
        options["api_key"] = LOCAL_API_KEY
    return ChatMyShell(**{**options, **fields})


@pytest.fixture(params=["websocket", "http", "openapi", "auto"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def chat(local_server, transport):
    with make(local_server, transport) as model:
        yield model


@pytest.fixture(autouse=True)
def no_credentials_from_the_environment(monkeypatch):
    monkeypatch.delenv("MYSHELL_TOKEN", raising=False)
    monkeypatch.delenv("MYSHELL_API_KEY", raising=False)


def test_invoke_answers_an_ai_message(chat, transport):
    message = chat.invoke("hi")
    assert isinstance(message, AIMessage)
    assert message.content == expected(transport, [user("hi")])
    assert message.response_metadata["model_name"] == MODEL[transport]
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["transport"] == transport


def test_stream_yields_ai_message_chunks(chat, transport):
    chunks = list(chat.stream(POEM))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert "".join(chunk.content for chunk in chunks) == expected(transport, [user(POEM)])
    if transport != "openapi":  # the key-based API answers whole
        assert len(chunks) > 4
    last = chunks[-1]
    assert last.chunk_position == "last" and last.response_metadata["finish_reason"] == "stop"
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.content == expected(transport, [user(POEM)])


def test_invoke_with_streaming_true_goes_through_the_stream_and_its_callbacks(local_server):
    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs) -> None:
            tokens.append(token)

    with make(local_server, "websocket", streaming=True) as model:
        message = model.invoke(POEM, config={"callbacks": [Tokens()]})
    assert message.content == expected("websocket", [user(POEM)])
    assert "".join(tokens) == message.content and len(tokens) > 4


def test_batch_of_8_prompts_runs_in_threads_on_one_shared_client(chat, transport):
    prompts = [f"prompt number {i}" for i in range(8)]
    threads = set()

    class Threads(BaseCallbackHandler):
        def on_chat_model_start(self, *args, **kwargs) -> None:
            threads.add(threading.get_ident())

    client = chat.get_client()
    replies = chat.batch(prompts, config={"max_concurrency": 8, "callbacks": [Threads()]})
    assert [reply.content for reply in replies] == [expected(transport, [user(p)]) for p in prompts]
    assert chat.get_client() is client
    assert len(threads) > 1  # the calls ran in several threads at once


def test_a_prompt_model_parser_chain(chat, transport):
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "Tell me about {topic}")])
    chain = prompt | chat | StrOutputParser()
    answer = chain.invoke({"topic": "owls"})
    assert answer == expected(transport, [{"role": "system", "content": "Be brief."}, user("Tell me about owls")])
    assert "".join(chain.stream({"topic": "owls"})) == answer


def test_the_history_is_sent(chat, transport, local_server):
    history = [SystemMessage("Be brief."), HumanMessage("one"), AIMessage("reply one"), HumanMessage("two")]
    sent = [
        {"role": "system", "content": "Be brief."},
        user("one"),
        {"role": "assistant", "content": "reply one"},
        user("two"),
    ]
    assert chat.invoke(history).content == expected(transport, sent)
    if transport == "openapi":
        assert local_server.openapi_requests[-1]["input"]["memory"] == sent[1:3]
    elif transport == "http":
        assert local_server.http_requests[-1]["json"]["message"] == format_prompt(sent)
    else:
        assert local_server.requests[-1]["text"] == format_prompt(sent)


def test_settings_reach_the_key_based_api_from_fields_and_bind(local_server):
    with make(local_server, "openapi", temperature=0.3, max_tokens=20) as model:
        model.invoke("hi")
        sent = local_server.openapi_requests[-1]["input"]
        assert (sent["temperature"], sent["max_tokens"]) == (0.3, 20)
        model.bind(temperature=0.7, top_p=0.5).invoke("hi")
        sent = local_server.openapi_requests[-1]["input"]
        assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.7, 0.5, 20)
        assert model._identifying_params == {
            "model": "gpt-4o-mini",
            "transport": "openapi",
            "temperature": 0.3,
            "max_tokens": 20,
        }
    with make(local_server, "websocket", temperature=0.3) as model:
        with pytest.raises(ValueError, match="temperature"):
            model.invoke("hi")
        with pytest.raises(TypeError, match="tools"):
            model.invoke("hi", tools=[])
    assert local_server.requests == []


def test_stop_strings_cut_the_reply(chat, transport):
    assert (
        chat.invoke("one two three", stop=["two"]).content
        == expected(transport, [user("one two three")]).split("two")[0]
    )
    pieces = [chunk.content for chunk in chat.stream("one two three", stop=["thr"])]
    assert "".join(pieces) == expected(transport, [user("one two three")]).split("thr")[0]


def test_leaving_a_stream_early_cancels_the_reply_upstream():
    with LocalMyshellServer(chunk_delay=0.2) as server:
        with make(server, "http") as model:
            stream = model.stream(POEM)
            assert next(stream).content == "assistant: "
            stream.close()
            assert server.wait_for(lambda s: s.http_cancelled == 1, 10)


def test_our_errors_propagate_typed():
    with LocalMyshellServer(captcha_window=60) as server:
        for transport in ("websocket", "http"):
            with make(server, transport) as model:
                with pytest.raises(CaptchaRequiredError):
                    model.invoke("hi")
                with pytest.raises(CaptchaRequiredError):
                    list(model.stream("hi"))
        with make(server, "websocket", model="no-such-model") as model:
            with pytest.raises(UnsupportedModelError):
                model.invoke("hi")


def test_keys_are_secret_and_come_from_the_environment(local_server, monkeypatch):
    model = ChatMyShell(model="gpt-4", token="token-secret-1", api_key="key-secret-2")
    assert isinstance(model.token, SecretStr) and isinstance(model.api_key, SecretStr)
    for shown in (repr(model), str(model), str(model.model_dump()), model.model_dump_json()):
        assert "token-secret-1" not in shown and "key-secret-2" not in shown
    assert model.resolved_transport == "openapi"  # an API key and no transport, as Myshell() decides
    monkeypatch.setenv("MYSHELL_API_KEY", LOCAL_API_KEY)
    monkeypatch.setenv("MYSHELL_OPENAPI_URL", local_server.base_url)
    with ChatMyShell(model="gpt-4o") as model:
        assert model.api_key.get_secret_value() == LOCAL_API_KEY
        assert model.invoke("hi").content == openapi_reply("gpt-4o", "hi", 0, False)


def test_a_client_passed_in_is_used_and_left_open(local_server):
    with Myshell(local_server.base_url, captcha_delay=0, timeout=10) as client:
        model = ChatMyShell(model="gpt-4", client=client)
        assert model.invoke("hi").content == "gpt-4: hi"
        assert model.get_client() is client
        model.close()
        assert not client.closed
        assert "client" not in model.model_dump()


def test_ainvoke_and_astream_run_the_sync_calls_in_threads(local_server):
    async def main(model: ChatMyShell):
        message = await model.ainvoke("hi")
        chunks = [chunk.content async for chunk in model.astream(POEM)]
        return message.content, "".join(chunks)

    with make(local_server, "websocket") as model:
        assert asyncio.run(main(model)) == ("gpt-4: hi", expected("websocket", [user(POEM)]))
