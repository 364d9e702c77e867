"""The key-based API transport (``transport="openapi"``) against the local server.

The local server answers ``/public/v1/widget/run`` with what it received
(``openapi_reply``: the widget's model, the number of earlier turns, whether
a system prompt came, the user prompt), records every request and has fault
switches; every wait goes through ``server.wait_for``.
"""

from __future__ import annotations

import json
import logging

import pytest

from myshell_sync import (
    AuthenticationError,
    Myshell,
    ProtocolError,
    RateLimitError,
    ServerError,
    Timeout,
    UnsupportedModelError,
    openapi_models,
)
from myshell_sync.local import DEFAULT_WIDGETS, LOCAL_API_KEY, LocalMyshellServer, openapi_reply

USER = [{"role": "user", "content": "hello there"}]


def make(server, **options):
    options.setdefault("api_key", LOCAL_API_KEY)
    options.setdefault("timeout", 10)
    return Myshell(server.base_url, transport="openapi", **options)


@pytest.fixture
def server():
    with LocalMyshellServer() as server:
        yield server


# -- choosing the transport ---------------------------------------------------------


def test_an_api_key_selects_the_key_based_api_and_its_host(monkeypatch):
    monkeypatch.delenv("MYSHELL_API_KEY", raising=False)
    with Myshell(api_key="k") as client:
        assert client.transport == "openapi" and client.base_url == "https://openapi.myshell.ai"
    with Myshell() as client:
        assert client.transport == "websocket" and client.base_url == "https://api.myshell.ai"
    monkeypatch.setenv("MYSHELL_API_KEY", "from-env")
    with Myshell() as client:
        assert client.transport == "openapi"
    with Myshell(transport="http") as client:  # an explicit value always wins
        assert client.transport == "http" and client.base_url == "https://api.myshell.ai"


def test_no_api_key_is_an_authentication_error_before_sending(server, monkeypatch):
    monkeypatch.delenv("MYSHELL_API_KEY", raising=False)
    with Myshell(server.base_url, transport="openapi") as client:
        with pytest.raises(AuthenticationError, match="api_key= or set MYSHELL_API_KEY"):
            list(client.generate("gpt-4o", USER))
    assert server.openapi_requests == []


# -- models -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(openapi_models))
def test_a_reply_per_model_name(server, name):
    with make(server) as client:
        reply = client.chat(name, USER)
    model = DEFAULT_WIDGETS[openapi_models[name]]
    assert reply.text == openapi_reply(model, "hello there", 0, False)
    assert reply.message == {"text": reply.text}
    (request,) = server.openapi_requests
    assert request["json"]["widget_id"] == openapi_models[name]


@pytest.mark.parametrize("widget_id", sorted(DEFAULT_WIDGETS))
def test_a_reply_per_raw_widget_id(server, widget_id):
    with make(server) as client:
        chunks = list(client.generate(widget_id, USER))
    assert chunks == [openapi_reply(DEFAULT_WIDGETS[widget_id], "hello there", 0, False)]


def test_a_websocket_model_name_says_which_names_exist_here(server):
    with make(server) as client:
        with pytest.raises(UnsupportedModelError, match=r"gpt-4o-mini.*does not serve"):
            client.generate("gpt-4", USER)
        with pytest.raises(UnsupportedModelError, match="gpt-4o, gpt-4o-mini"):
            client.generate("no-such-model", USER)
    assert server.openapi_requests == []


# -- the request ----------------------------------------------------------------------


def test_the_exact_request_body_and_headers(server):
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "first answer"},
        {"role": "system", "content": "and kind"},
        {"role": "user", "content": "second"},
    ]
    with make(server, headers={"x-extra": "1"}) as client:
        reply = client.chat("gpt-4o", messages, temperature=0.2, max_tokens=50)
    assert reply.text == openapi_reply("gpt-4o", "second", 2, True)
    (request,) = server.openapi_requests
    body = request["json"]
    assert set(body) == {"widget_id", "input"} and isinstance(body["input"], str)  # double-encoded
    assert (
        json.loads(body["input"])
        == request["input"]
        == {
            "system_prompt": "be brief\n\nand kind",
            "user_prompt": "second",
            "memory": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "first answer"}],
            "temperature": 0.2,
            "max_tokens": 50,
        }
    )
    headers = request["headers"]
    assert headers["x-myshell-openapi-key"] == LOCAL_API_KEY
    assert headers["content-type"] == "application/json"
    assert headers["x-extra"] == "1"
    assert "visitor-id" not in headers and "authorization" not in headers


def test_settings_are_sent_only_when_given(server):
    with make(server) as client:
        client.chat("gpt-4o", USER)
        client.chat("gpt-4o", USER, top_p=0.5, presence_penalty=0.1, frequency_penalty=0.3)
    first, second = (r["input"] for r in server.openapi_requests)
    assert first == {"user_prompt": "hello there", "memory": []}
    assert second == {
        "user_prompt": "hello there",
        "memory": [],
        "top_p": 0.5,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
    }


def test_the_last_message_must_be_the_users(server):
    with make(server) as client:
        with pytest.raises(ValueError, match="last message must be the user's"):
            list(client.generate("gpt-4o", USER + [{"role": "assistant", "content": "x"}]))
    assert server.openapi_requests == []


@pytest.mark.parametrize("transport", ["websocket", "http", "auto"])
def test_settings_on_a_transport_without_them_are_a_value_error(transport):
    with Myshell("http://127.0.0.1:9", transport=transport) as client:
        with pytest.raises(ValueError, match='temperature: .*only transport="openapi"'):
            client.generate("gpt-4", USER, temperature=0.2)
        with pytest.raises(TypeError, match="max_tokens must be an int"):
            Myshell(api_key="k").generate("gpt-4o", USER, max_tokens=1.5)


# -- errors -------------------------------------------------------------------------------


def test_a_bad_key_is_an_authentication_error_without_the_key(server):
    with make(server, api_key="wrong-key-123456") as client:
        with pytest.raises(AuthenticationError) as info:
            list(client.generate("gpt-4o", USER))
    error = info.value
    assert error.status_code == 401
    assert "wrong-key-123456" not in str(error) + repr(error) + (error.body or "")


@pytest.mark.parametrize(
    "status, cls", [(401, AuthenticationError), (403, AuthenticationError), (500, ServerError), (503, ServerError)]
)
def test_statuses_map_to_typed_errors(server, status, cls):
    server.openapi_status = status
    with make(server, max_retries=3) as client:
        with pytest.raises(cls) as info:
            list(client.generate("gpt-4o", USER))
    assert info.value.status_code == status
    assert len(server.openapi_requests) == 1  # never retried


def test_a_429_is_retried_after_retry_after_then_succeeds(server):
    server.openapi_status = 429
    server.openapi_status_times = 2
    server.openapi_retry_after = "0.1"
    with make(server, max_retries=2) as client:
        assert client.chat("gpt-4o", USER).text == openapi_reply("gpt-4o", "hello there", 0, False)
    assert len(server.openapi_requests) == 3


def test_a_429_past_the_retries_is_a_rate_limit_error_with_retry_after(server):
    server.openapi_status = 429
    server.openapi_retry_after = "0.1"
    with make(server, max_retries=1) as client:
        with pytest.raises(RateLimitError) as info:
            list(client.generate("gpt-4o", USER))
    assert info.value.retry_after == 0.1 and info.value.status_code == 429
    assert len(server.openapi_requests) == 2


def test_a_429_is_not_retried_past_the_total(server):
    server.openapi_status = 429
    server.openapi_retry_after = "30"
    with make(server, max_retries=5, timeout=Timeout(10, total=2)) as client:
        with pytest.raises(RateLimitError):
            list(client.generate("gpt-4o", USER))
    assert len(server.openapi_requests) == 1


def test_success_false_is_a_server_error_with_its_message(server):
    server.openapi_failure = "the widget is down"
    with make(server) as client:
        with pytest.raises(ServerError, match="the widget is down") as info:
            list(client.generate("gpt-4o", USER))
    assert info.value.status_code == 200


@pytest.mark.parametrize("kind", ["no-result", "not-json", "result-not-json", "result-not-string"])
def test_a_malformed_answer_is_a_protocol_error(server, kind):
    server.openapi_malformed = kind
    with make(server) as client:
        with pytest.raises(ProtocolError, match="key-based API answered"):
            list(client.generate("gpt-4o", USER))


def test_a_slow_answer_times_out_and_the_server_sees_the_cancel(server):
    server.openapi_delay = 30
    with make(server, timeout=Timeout(10, first_chunk=0.5)) as client:
        with pytest.raises(Exception, match="first_chunk"):
            list(client.generate("gpt-4o", USER))
    assert server.wait_for(lambda s: s.openapi_cancelled == 1, 10)


def test_connection_refused_is_retried_then_a_connection_error():
    from myshell_sync import MyshellConnectionError

    with Myshell("http://127.0.0.1:9", transport="openapi", api_key="k", max_retries=1, timeout=5) as client:
        with pytest.raises(MyshellConnectionError, match="cannot connect"):
            list(client.generate("gpt-4o", USER))


# -- the connection and the secret ------------------------------------------------------


def test_five_calls_one_tcp_connection(server):
    with make(server) as client:
        for i in range(5):
            assert client.chat("gpt-4o", [{"role": "user", "content": f"call {i}"}]).text.endswith(f"call {i}")
    assert server.http_connections == 1


def test_the_api_key_never_appears_in_logs_reprs_or_errors(server, caplog):
    key = "sk-secret-openapi-key-0123456789"
    server.api_keys = {key}
    with caplog.at_level(logging.DEBUG):
        with make(server, api_key=key) as client:
            reply = client.chat("gpt-4o", USER)
            shown = [repr(client), str(client), repr(reply), repr(client._transport), repr(client._identity)]
            server.openapi_status = 500
            with pytest.raises(ServerError) as info:
                list(client.generate("gpt-4o", USER))
            shown += [str(info.value), repr(info.value), info.value.body or ""]
    assert key not in caplog.text
    assert not [text for text in shown if key in text]
