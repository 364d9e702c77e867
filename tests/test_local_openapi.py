"""The local server's key-based API (``POST /public/v1/widget/run``), with plain ``requests``.

Every test stops its server (the ``with`` blocks); waits go through
``server.wait_for``.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import websocket

from myshell_sync.local import DEFAULT_WIDGETS, LOCAL_API_KEY, MALFORMED_KINDS, LocalMyshellServer, openapi_reply
from myshell_sync.local._rules import widget_run_check

RUN = "/public/v1/widget/run"
KEY = {"x-myshell-openapi-key": LOCAL_API_KEY}
GPT4O = "1744214024104448199"


def run(server, prompt="hi", widget_id=GPT4O, headers=KEY, body=None, session=requests, timeout=5, **fields):
    """One widget run: ``input`` is ``{"user_prompt": prompt, **fields}``, JSON-encoded."""
    if body is None:
        body = {"widget_id": widget_id, "input": json.dumps(dict(fields, user_prompt=prompt))}
    return session.post(server.base_url + RUN, json=body, headers=headers, timeout=timeout)


def reply_of(response):
    """The reply string of a successful run."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "result"} and body["success"] is True
    assert isinstance(body["result"], str)
    return json.loads(body["result"])


def failure_of(response, status):
    """The message of a ``{"success": false, "message"}`` answer with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "message"} and body["success"] is False
    return body["message"]


# ----------------------------------------------------------------------
# Replies


def test_the_reply_rule():
    assert openapi_reply("gpt-4o", "hi", 0, False) == "gpt-4o (0 earlier turns): hi"
    assert openapi_reply("m", "a b", 3, True) == "m (3 earlier turns, system): a b"


def test_the_widget_table():
    assert DEFAULT_WIDGETS == {
        "1744214024104448000": "gpt-3.5-turbo",
        "1744214024104448199": "gpt-4o",
        "1744218088699597788": "gpt-4o-mini",
        "1744214047475109888": "gpt-4-turbo",
        "1744218088699596812": "claude-3.5-sonnet",
    }


@pytest.mark.parametrize("widget_id, model", sorted(DEFAULT_WIDGETS.items()))
def test_each_widget_answers_with_its_model(widget_id, model):
    with LocalMyshellServer() as server:
        assert reply_of(run(server, "yo", widget_id)) == f"{model} (0 earlier turns): yo"


def test_result_is_the_json_text_of_the_reply():
    prompt = 'quote " back\\slash 你好 🎉\nnew line'
    with LocalMyshellServer() as server:
        response = run(server, prompt)
    expected = f"gpt-4o (0 earlier turns): {prompt}"
    assert response.json()["result"] == json.dumps(expected)
    assert reply_of(response) == expected


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({}, "gpt-4o (0 earlier turns): now"),
        ({"memory": []}, "gpt-4o (0 earlier turns): now"),
        (
            {"memory": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "gpt-4o (2 earlier turns): now",
        ),
        ({"system_prompt": ""}, "gpt-4o (0 earlier turns): now"),
        ({"system_prompt": "be brief"}, "gpt-4o (0 earlier turns, system): now"),
        (
            {"system_prompt": "s", "memory": [{"role": "user", "content": "a"}] * 3},
            "gpt-4o (3 earlier turns, system): now",
        ),
    ],
)
def test_memory_and_system_prompt_are_reflected(fields, expected):
    with LocalMyshellServer() as server:
        assert reply_of(run(server, "now", **fields)) == expected


def test_every_documented_setting_is_accepted():
    settings = {
        "system_prompt": "",
        "memory": [],
        "temperature": 0.7,
        "top_p": 1,
        "max_tokens": None,
        "presence_penalty": 0.0,
        "frequency_penalty": -0.5,
    }
    with LocalMyshellServer() as server:
        assert reply_of(run(server, "x", **settings)) == "gpt-4o (0 earlier turns): x"
        assert reply_of(run(server, "y", max_tokens=64)) == "gpt-4o (0 earlier turns): y"


def test_custom_widgets():
    with LocalMyshellServer(widgets={"42": "echo"}) as server:
        assert reply_of(run(server, "a", "42")) == "echo (0 earlier turns): a"
        assert failure_of(run(server, "a", GPT4O), 400).startswith("unknown widget_id")


def test_the_request_is_recorded_exactly():
    text = json.dumps({"user_prompt": "hi", "memory": [{"role": "user", "content": "m"}], "temperature": 0.2})
    body = {"widget_id": GPT4O, "input": text}
    with LocalMyshellServer() as server:
        reply_of(run(server, body=body, headers=dict(KEY, **{"X-Extra": "Yes"})))
        recorded = server.openapi_requests
    assert len(recorded) == 1
    assert recorded[0]["json"] == body
    assert isinstance(recorded[0]["json"]["input"], str)  # double-encoded, as sent
    assert recorded[0]["input"] == json.loads(text)
    headers = recorded[0]["headers"]
    assert headers["x-myshell-openapi-key"] == LOCAL_API_KEY
    assert headers["x-extra"] == "Yes"
    assert headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in headers)


def test_the_server_answers_again_after_a_restart():
    server = LocalMyshellServer(openapi_delay=0.01)
    with server:
        reply_of(run(server, "one"))
    with server:
        reply_of(run(server, "two"))
    assert [r["input"]["user_prompt"] for r in server.openapi_requests] == ["one", "two"]


# ----------------------------------------------------------------------
# The key


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-myshell-openapi-key": "wrong"},
        {"x-myshell-openapi-key": ""},
        {"Authorization": f"Bearer {LOCAL_API_KEY}"},
    ],
)
def test_a_missing_or_wrong_key_is_refused(headers):
    with LocalMyshellServer() as server:
        assert failure_of(run(server, headers=headers), 401) == "invalid API key"
        assert len(server.openapi_requests) == 1


def test_the_key_header_name_is_case_insensitive():
    with LocalMyshellServer() as server:
        reply_of(run(server, headers={"X-MyShell-OpenAPI-Key": LOCAL_API_KEY}))


def test_api_keys_replace_the_default_and_can_change_at_runtime():
    with LocalMyshellServer(api_keys=["k1", "k2"]) as server:
        assert server.api_keys == {"k1", "k2"}
        failure_of(run(server), 401)
        reply_of(run(server, headers={"x-myshell-openapi-key": "k2"}))
        server.api_keys = set()
        failure_of(run(server, headers={"x-myshell-openapi-key": "k2"}), 401)


def test_the_key_is_checked_before_the_body():
    with LocalMyshellServer() as server:
        failure_of(run(server, body=[1], headers={}), 401)


@pytest.mark.parametrize("bad", ["local-api-key", b"key", [1], [None]])
def test_api_keys_are_validated(bad):
    with pytest.raises(ValueError):
        LocalMyshellServer(api_keys=bad)


# ----------------------------------------------------------------------
# Bad bodies


def _input(**fields):
    return json.dumps(dict({"user_prompt": "p"}, **fields))


@pytest.mark.parametrize(
    "body, field",
    [
        ([GPT4O], "body"),
        ("a string", "body"),
        ({"input": _input()}, "widget_id"),
        ({"widget_id": int(GPT4O), "input": _input()}, "widget_id"),
        ({"widget_id": "123", "input": _input()}, "unknown widget_id"),
        ({"widget_id": GPT4O}, "input"),
        ({"widget_id": GPT4O, "input": {"user_prompt": "p"}}, "input"),
        ({"widget_id": GPT4O, "input": "{not json"}, "input"),
        ({"widget_id": GPT4O, "input": "[1, 2]"}, "input"),
        ({"widget_id": GPT4O, "input": _input(), "workflow_id": "1"}, "workflow_id"),
        ({"widget_id": GPT4O, "input": "{}"}, "user_prompt"),
        ({"widget_id": GPT4O, "input": _input(user_prompt=None)}, "user_prompt"),
        ({"widget_id": GPT4O, "input": _input(user_prompt=[{"type": "text", "text": "p"}])}, "user_prompt"),
        ({"widget_id": GPT4O, "input": _input(system_prompt=1)}, "system_prompt"),
        ({"widget_id": GPT4O, "input": _input(system_prompt=None)}, "system_prompt"),
        ({"widget_id": GPT4O, "input": _input(memory={"role": "user"})}, "memory"),
        ({"widget_id": GPT4O, "input": _input(memory=[{"role": "system", "content": "s"}])}, "memory"),
        ({"widget_id": GPT4O, "input": _input(memory=[{"role": "user", "content": 1}])}, "memory"),
        ({"widget_id": GPT4O, "input": _input(memory=[{"role": "user"}])}, "memory"),
        ({"widget_id": GPT4O, "input": _input(memory=[{"role": "user", "content": "c", "name": "n"}])}, "memory"),
        ({"widget_id": GPT4O, "input": _input(memory=["hi"])}, "memory"),
        ({"widget_id": GPT4O, "input": _input(temperature="0.7")}, "temperature"),
        ({"widget_id": GPT4O, "input": _input(temperature=True)}, "temperature"),
        ({"widget_id": GPT4O, "input": _input(top_p=None)}, "top_p"),
        ({"widget_id": GPT4O, "input": _input(presence_penalty=[0])}, "presence_penalty"),
        ({"widget_id": GPT4O, "input": _input(frequency_penalty={})}, "frequency_penalty"),
        ({"widget_id": GPT4O, "input": _input(max_tokens=10.0)}, "max_tokens"),
        ({"widget_id": GPT4O, "input": _input(max_tokens="10")}, "max_tokens"),
        ({"widget_id": GPT4O, "input": _input(max_tokens=False)}, "max_tokens"),
        ({"widget_id": GPT4O, "input": _input(function_name="f")}, "function_name"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(body, field):
    with LocalMyshellServer() as server:
        message = failure_of(run(server, body=body), 400)
        assert field in message
        assert server.openapi_requests[0]["json"] == body


def test_a_non_finite_setting_is_refused():
    with LocalMyshellServer() as server:
        body = {"widget_id": GPT4O, "input": '{"user_prompt": "p", "temperature": NaN}'}
        assert "temperature" in failure_of(run(server, body=body), 400)


def test_a_body_that_is_not_json_is_recorded_as_none():
    with LocalMyshellServer() as server:
        response = requests.post(server.base_url + RUN, data=b"{nope", headers=KEY, timeout=5)
        assert failure_of(response, 400) == "the body must be a JSON object"
        assert server.openapi_requests[0]["json"] is None
        assert server.openapi_requests[0]["input"] is None


def test_a_refused_input_is_recorded_decoded_when_it_is_json():
    with LocalMyshellServer() as server:
        failure_of(run(server, "p", "999"), 400)
        failure_of(run(server, body={"widget_id": GPT4O, "input": "{oops"}), 400)
        recorded = server.openapi_requests
    assert recorded[0]["input"] == {"user_prompt": "p"}
    assert recorded[1]["input"] is None


def test_the_validator_returns_the_input_or_the_problem():
    good = {"widget_id": GPT4O, "input": _input(memory=[])}
    assert widget_run_check(good, DEFAULT_WIDGETS) == ({"user_prompt": "p", "memory": []}, None)
    data, problem = widget_run_check({"widget_id": "1", "input": "[]"}, DEFAULT_WIDGETS)
    assert data == [] and problem.startswith("unknown widget_id '1'")


# ----------------------------------------------------------------------
# Switches


@pytest.mark.parametrize("status", [400, 401, 403, 500, 502, 503])
def test_openapi_status_answers_that_status(status):
    with LocalMyshellServer(openapi_status=status) as server:
        response = run(server)
        assert failure_of(response, status)
        assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    "kwargs, header", [({}, "1"), ({"openapi_retry_after": "5"}, "5"), ({"openapi_retry_after": None}, None)]
)
def test_openapi_status_429_carries_retry_after(kwargs, header):
    with LocalMyshellServer(openapi_status=429, **kwargs) as server:
        response = run(server)
        assert "too many requests" in failure_of(response, 429)
        assert response.headers.get("Retry-After") == header


def test_openapi_status_comes_before_the_key_and_switches_off():
    with LocalMyshellServer(openapi_status=503) as server:
        failure_of(run(server, headers={}), 503)
        server.openapi_status = None
        failure_of(run(server, headers={}), 401)
        reply_of(run(server))


def test_openapi_status_times_then_normal_answers():
    with LocalMyshellServer(openapi_status=429, openapi_status_times=2) as server:
        failure_of(run(server, "1"), 429)
        assert server.openapi_status_times == 1
        failure_of(run(server, "2"), 429)
        assert server.openapi_status_times == 0
        assert reply_of(run(server, "3")) == "gpt-4o (0 earlier turns): 3"
        assert reply_of(run(server, "4")) == "gpt-4o (0 earlier turns): 4"
        server.openapi_status_times = 1  # re-armed at runtime
        failure_of(run(server, "5"), 429)
        reply_of(run(server, "6"))
        assert len(server.openapi_requests) == 6


def test_openapi_status_times_zero_answers_normally():
    with LocalMyshellServer(openapi_status=500, openapi_status_times=0) as server:
        reply_of(run(server))


def test_openapi_failure_answers_200_with_success_false():
    with LocalMyshellServer(openapi_failure="quota exhausted") as server:
        assert failure_of(run(server), 200) == "quota exhausted"
        failure_of(run(server, headers={}), 401)  # the key still comes first
        failure_of(run(server, widget_id="1"), 400)  # and the body
        server.openapi_failure = None
        reply_of(run(server))


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_openapi_malformed(kind):
    with LocalMyshellServer(openapi_malformed=kind) as server:
        response = run(server, "m")
        assert response.status_code == 200
        if kind == "not-json":
            assert response.headers["Content-Type"].startswith("text/html")
            with pytest.raises(ValueError):
                response.json()
            return
        body = response.json()
        assert body["success"] is True
        if kind == "no-result":
            assert body == {"success": True}
        elif kind == "result-not-json":
            with pytest.raises(ValueError):
                json.loads(body["result"])
        else:
            assert not isinstance(json.loads(body["result"]), str)
        server.openapi_malformed = None
        reply_of(run(server))


def test_openapi_delay_holds_the_answer_back():
    with LocalMyshellServer(openapi_delay=0.3) as server:
        started = time.monotonic()
        reply_of(run(server))
        assert time.monotonic() - started >= 0.3
        failure_of(run(server, headers={}), 401)  # every answer waits
        assert time.monotonic() - started >= 0.6
        assert server.openapi_cancelled == 0


def test_a_client_timeout_during_the_delay_is_counted_cancelled():
    with LocalMyshellServer(openapi_delay=30) as server:
        with pytest.raises(requests.exceptions.ReadTimeout):
            run(server, timeout=(5, 0.2))
        assert server.wait_for(lambda s: s.openapi_cancelled == 1, 5)
        assert len(server.openapi_requests) == 1
        server.openapi_delay = 0
        reply_of(run(server))
        assert server.openapi_cancelled == 1


def test_stop_ends_a_delayed_run_promptly_and_does_not_count_it():
    outcome = []

    def call():
        try:
            outcome.append(run(server, timeout=30).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    server = LocalMyshellServer(openapi_delay=30).start()
    thread = threading.Thread(target=call)
    try:
        thread.start()
        assert server.wait_for(lambda s: len(s.openapi_requests) == 1, 5)
        started = time.monotonic()
    finally:
        server.stop()
    assert time.monotonic() - started < 5
    thread.join(10)
    assert len(outcome) == 1 and not isinstance(outcome[0], int)  # no answer came
    assert server.openapi_cancelled == 0


@pytest.mark.parametrize(
    "switch, bad",
    [
        ("openapi_status", 200),
        ("openapi_status", "429"),
        ("openapi_status", True),
        ("openapi_status_times", -1),
        ("openapi_status_times", 1.5),
        ("openapi_status_times", True),
        ("openapi_retry_after", 1),
        ("openapi_failure", 1),
        ("openapi_malformed", "garbage"),
        ("openapi_malformed", True),
        ("openapi_delay", -1),
        ("openapi_delay", "1"),
        ("openapi_delay", float("inf")),
    ],
)
def test_switches_are_validated(switch, bad):
    with pytest.raises(ValueError):
        LocalMyshellServer(**{switch: bad})
    server = LocalMyshellServer()
    with pytest.raises(ValueError):
        setattr(server, switch, bad)


def test_switch_defaults():
    server = LocalMyshellServer()
    assert server.api_keys == {LOCAL_API_KEY}
    assert server.widgets == dict(DEFAULT_WIDGETS)
    assert (
        server.openapi_status,
        server.openapi_status_times,
        server.openapi_retry_after,
        server.openapi_failure,
        server.openapi_malformed,
        server.openapi_delay,
    ) == (None, None, "1", None, None, 0.0)
    assert (server.openapi_requests, server.openapi_cancelled, server.http_connections) == ([], 0, 0)


# ----------------------------------------------------------------------
# http_connections


def test_one_session_is_one_connection():
    with LocalMyshellServer() as server, requests.Session() as session:
        for index in range(5):
            reply_of(run(server, str(index), session=session))
        assert server.http_connections == 1


def test_new_sessions_are_new_connections():
    with LocalMyshellServer() as server:
        for index in range(5):
            with requests.Session() as session:
                reply_of(run(server, str(index), session=session))
        assert server.http_connections == 5


def test_every_http_route_counts_on_one_connection_and_refusals_too():
    with LocalMyshellServer() as server, requests.Session() as session:
        send = session.post(
            server.base_url + "/v1/bot/chat/send_message",
            json={"botId": "4738", "message": "m", "messageType": 1},
            headers={"myshell-service-name": "organics-api"},
            timeout=5,
        )
        assert send.status_code == 200 and send.content  # read to the end
        energy = session.get(
            server.base_url + "/user/getUserEnergyInfo", headers={"Authorization": "Bearer t"}, timeout=5
        )
        assert energy.status_code == 200
        failure_of(run(server, session=session, headers={}), 401)
        reply_of(run(server, session=session))
        assert server.http_connections == 1
        with requests.Session() as other:
            other.get(server.base_url + "/user/getUserEnergyInfo", timeout=5)
        assert server.http_connections == 2


def test_the_socketio_side_does_not_count():
    with LocalMyshellServer() as server:
        ws = websocket.create_connection(server.ws_url, timeout=5)
        try:
            assert ws.recv().startswith("0{")  # the Engine.IO open packet
        finally:
            ws.close()
        assert server.http_connections == 0
        reply_of(run(server))
        assert server.http_connections == 1


def test_widget_run_and_connection_counting_over_tls(tls):
    context, ca_file = tls
    with LocalMyshellServer(ssl_context=context) as server, requests.Session() as session:
        assert server.base_url.startswith("https://")
        body = {"widget_id": GPT4O, "input": json.dumps({"user_prompt": "tls"})}
        for _ in range(3):
            response = session.post(server.base_url + RUN, json=body, headers=KEY, verify=ca_file, timeout=5)
            assert reply_of(response) == "gpt-4o (0 earlier turns): tls"
        assert server.http_connections == 1
