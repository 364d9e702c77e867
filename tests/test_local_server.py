"""The local server (myshell_sync.local): its HTTP API exercised with plain
``requests``, TLS, the WebSocket upgrade refusal, and the standalone process.

Streams are parsed with the SDK's own ``SSEDecoder``. Every test stops its
server (the ``with`` blocks); waits go through ``server.wait_for``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests
import websocket

from myshell_sync import Myshell
from myshell_sync._signing import generate_header_timestamp
from myshell_sync._sse import SSEDecoder
from myshell_sync.local import DEFAULT_HTTP_BOTS, LocalMyshellServer, reply_chunks
from myshell_sync.local._rules import ERROR_EVENTS

SEND = "/v1/bot/chat/send_message"
ENERGY = "/user/getUserEnergyInfo"
PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"
HEADERS = {"myshell-service-name": "organics-api"}
ENVELOPE_FIELDS = {
    "content",
    "voiceBytes",
    "voiceBytesIndex",
    "errorReason",
    "status",
    "voiceFilePath",
    "message",
    "audioFileDurationSeconds",
    "userEnergyInfo",
    "imageGenMessageResponse",
}
NORMAL = [
    "USER_SENT_MESSAGE_CREATED",
    "USER_SENT_MESSAGE_REPLYING",
    "TEXT",
    "TEXT_STREAM_PUSH_FINISHED",
    "USER_SENT_MESSAGE_REPLIED",
]


def post(server, message="hi", bot_id="4738", headers=None, body=None, **kwargs):
    """Send a send_message; the caller closes the response."""
    payload = (
        {"botId": bot_id, "conversation_scenario": 3, "message": message, "messageType": 1} if body is None else body
    )
    kwargs.setdefault("timeout", 5)
    return requests.post(
        server.base_url + SEND, json=payload, headers=dict(HEADERS, **(headers or {})), stream=True, **kwargs
    )


def read_stream(response):
    """Decode the whole body: ``(events, decoder)``; transport errors propagate."""
    decoder = SSEDecoder()
    events = []
    for chunk in response.iter_content(None):
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events, decoder


def names(events):
    """Event names without the prefix, with runs of TEXT collapsed to one."""
    out = []
    for event in events:
        assert event.event.startswith(PREFIX), event.event
        name = event.event[len(PREFIX) :]
        if not (name == "TEXT" and out and out[-1] == "TEXT"):
            out.append(name)
    return out


def texts(events):
    return [e.json()["content"] for e in events if e.event == PREFIX + "TEXT"]


def chat(server, message="hi", **kwargs):
    """One send_message read to the end: ``(response, events, decoder)``."""
    with post(server, message, **kwargs) as response:
        assert response.status_code == 200, response.text
        events, decoder = read_stream(response)
    return response, events, decoder


def error_body(response):
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


# ----------------------------------------------------------------------
# The normal reply


@pytest.mark.parametrize("message", ["hi", "Write a poem about love", "你好，世界 🎉 ok", "  spaced\nlines\r\n", ""])
def test_reply_streams_the_same_chunks_as_the_websocket_side(message):
    with LocalMyshellServer() as server:
        response, events, decoder = chat(server, message)
        assert server.wait_for(lambda s: s.open_http_streams == 0, 5)
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert not decoder.pending
    assert names(events) == NORMAL
    assert texts(events) == reply_chunks("assistant", message)
    for event in events:
        assert set(event.json()) == ENVELOPE_FIELDS
        assert str(uuid.UUID(event.id)) == event.id
    assert len({e.id for e in events}) == len(events)
    user = events[0].json()["message"]
    assert (user["text"], user["status"], user["botId"]) == (message, "DONE", "4738")
    placeholder = events[1].json()["message"]
    assert placeholder["status"] == "PROCESSING"
    assert placeholder["replyUid"] == user["uid"]
    final = events[-1].json()["message"]
    assert final["text"] == "".join(reply_chunks("assistant", message)) == f"assistant: {message}"
    assert (final["status"], final["uid"]) == ("DONE", placeholder["uid"])
    assert events[-2].json()["content"] == ""


def test_data_lines_are_one_line_json_with_raw_utf8():
    with LocalMyshellServer() as server:
        with post(server, "日本語") as response:
            body = response.raw.read()
    assert "日本語".encode() in body
    lines = body.decode().split("\n")
    assert all(line.startswith(("id: ", "event: ", "data: ")) or line == "" for line in lines)
    assert lines[:3][0].startswith("id: ") and lines[1].startswith("event: ")
    assert body.endswith(b"\n\n")


@pytest.mark.parametrize("bot_id, name", sorted(DEFAULT_HTTP_BOTS.items()))
def test_default_http_bots(bot_id, name):
    with LocalMyshellServer() as server:
        _, events, _ = chat(server, "yo", bot_id=bot_id)
    assert "".join(texts(events)) == f"{name}: yo"


def test_custom_http_bots_and_unknown_bot():
    with LocalMyshellServer(http_bots={"77": "echo"}) as server:
        assert "".join(texts(chat(server, "a", bot_id="77")[1])) == "echo: a"
        with post(server, bot_id="4738") as response:
            assert response.status_code == 400
            assert error_body(response) == {
                "reason": "ERROR_REASON_BOT_NOT_FOUND",
                "message": "bot not found",
                "code": 400,
            }


def test_requests_are_recorded_with_lower_cased_headers():
    with LocalMyshellServer() as server:
        chat(server, "one", headers={"Visitor-Id": "v-1", "X-Mixed-Case": "Yes"})
        with post(server, body=[1, 2]) as response:
            assert response.status_code == 400
        recorded = server.http_requests
    assert len(recorded) == 2
    first = recorded[0]
    assert first["json"] == {"botId": "4738", "conversation_scenario": 3, "message": "one", "messageType": 1}
    assert first["headers"]["visitor-id"] == "v-1"
    assert first["headers"]["x-mixed-case"] == "Yes"
    assert first["headers"]["myshell-service-name"] == "organics-api"
    assert all(key == key.lower() for key in first["headers"])
    assert recorded[1]["json"] == [1, 2]


@pytest.mark.parametrize(
    "body",
    [
        {"botId": 4738, "message": "x", "messageType": 1},
        {"botId": "4738", "messageType": 1},
        {"botId": "4738", "message": "x", "messageType": 2},
        {"botId": "4738", "message": "x", "messageType": True},
        {"botId": "4738", "message": "x", "messageType": 1, "conversation_scenario": "3"},
        "just a string",
    ],
)
def test_a_malformed_body_is_refused(body):
    with LocalMyshellServer() as server:
        with post(server, body=body) as response:
            assert response.status_code == 400
            assert error_body(response)["reason"] == "ERROR_REASON_INVALID_REQUEST"


def test_a_body_that_is_not_json_is_recorded_as_none():
    with LocalMyshellServer() as server:
        response = requests.post(server.base_url + SEND, data=b"{nope", headers=HEADERS, timeout=5)
        assert response.status_code == 400
        assert server.http_requests[0]["json"] is None


def test_conversation_scenario_is_optional():
    with LocalMyshellServer() as server:
        _, events, _ = chat(server, body={"botId": "1", "message": "m", "messageType": 1})
    assert "".join(texts(events)) == "bot-1: m"


# ----------------------------------------------------------------------
# Header checks


def test_the_service_name_header_is_required():
    with LocalMyshellServer() as server:
        response = requests.post(
            server.base_url + SEND, timeout=5, json={"botId": "4738", "message": "x", "messageType": 1}
        )
        assert response.status_code == 400
        assert error_body(response)["reason"] == "ERROR_REASON_INVALID_SERVICE_NAME"
        with post(server, headers={"myshell-service-name": "other"}) as response:
            assert response.status_code == 400


@pytest.mark.parametrize(
    "stamp, ok",
    [
        ("1711568924954", True),  # the S15 capture: valid under variant B
        ("1711568924958", False),  # the same ms under variant A
        ("1700000000128", True),
        ("1700000000123", False),  # raw ms, as MsLolita sent it
        ("abc", False),
        ("", False),
    ],
)
def test_the_timestamp_header_must_carry_check_digit_b(stamp, ok):
    with LocalMyshellServer() as server:
        with post(server, headers={"timestamp": stamp}) as response:
            if ok:
                assert response.status_code == 200
                read_stream(response)
            else:
                assert response.status_code == 400
                assert error_body(response)["reason"] == "ERROR_REASON_INVALID_TIMESTAMP"


def test_a_fresh_header_timestamp_is_accepted():
    with LocalMyshellServer() as server:
        chat(server, headers={"timestamp": generate_header_timestamp()})


# ----------------------------------------------------------------------
# Fault switches shared with the WebSocket side


def test_tokens_require_a_matching_bearer():
    with LocalMyshellServer(tokens={"good"}) as server:
        for headers in (
            {},
            {"Authorization": "Bearer bad"},
            {"Authorization": "good"},
            {"Authorization": "Basic good"},
        ):
            with post(server, headers=headers) as response:
                assert response.status_code == 401, headers
                assert error_body(response)["reason"] == "ERROR_REASON_UNAUTHORIZED"
        _, events, _ = chat(server, headers={"Authorization": "Bearer good"})
        assert names(events) == NORMAL
        assert server.http_requests[-1]["headers"]["authorization"] == "Bearer good"


def test_captcha_window_counts_from_the_server_start():
    with LocalMyshellServer(captcha_window=60) as server:
        with post(server) as response:
            assert response.status_code == 400
            assert error_body(response) == {
                "reason": "ERROR_REASON_CHAT_NEED_VERIFY_CAPTCHA",
                "message": "need verify captcha",
                "code": 400,
            }
        server.captcha_window = 0
        assert names(chat(server)[1]) == NORMAL


def test_energy_budget_is_spent_and_reported():
    with LocalMyshellServer(energy=2) as server:
        events = chat(server)[1]
        assert names(events) == NORMAL + ["USER_CONSUMED_ENERGY"]
        assert events[-1].json()["userEnergyInfo"]["energy"] == 1
        assert chat(server)[1][-1].json()["userEnergyInfo"]["energy"] == 0
        with post(server) as response:
            assert response.status_code == 400
            assert error_body(response)["reason"] == "ERROR_REASON_USER_NOT_ENOUGH_ENERGY"
        assert server.energy == 0


@pytest.mark.parametrize("error_event", sorted(ERROR_EVENTS))
@pytest.mark.parametrize("error_after", [0, 2, 99])
def test_error_event_ends_the_stream_after_n_chunks(error_event, error_after):
    message = "one two three four"
    chunks = reply_chunks("assistant", message)
    with LocalMyshellServer(error_event=error_event, error_after=error_after) as server:
        _, events, decoder = chat(server, message)
    sent = min(error_after, len(chunks))
    assert texts(events) == chunks[:sent]
    assert names(events)[:2] == NORMAL[:2]
    assert names(events)[-1] == "ERROR"
    error = events[-1].json()
    assert error["status"] == {"message": ERROR_EVENTS[error_event]}
    assert error["errorReason"].startswith("ERROR_REASON_")
    assert not decoder.pending


def test_chunk_and_reply_delays_slow_the_stream():
    with LocalMyshellServer(reply_delay=0.2, chunk_delay=0.05) as server:
        started = time.monotonic()
        _, events, _ = chat(server, "a b c d")  # 5 chunks: 4 gaps
        elapsed = time.monotonic() - started
    assert len(texts(events)) == 5
    assert elapsed >= 0.2 + 4 * 0.05


@pytest.mark.parametrize("drop_after", [0, 2, 5])
def test_drop_after_aborts_once_exactly_n_chunks_arrived(drop_after):
    with LocalMyshellServer(drop_after=drop_after) as server:
        events = []
        decoder = SSEDecoder()
        with post(server, "one two three four five") as response:
            with pytest.raises(requests.exceptions.RequestException):
                for chunk in response.iter_content(None):
                    events.extend(decoder.feed(chunk))
        assert server.wait_for(lambda s: s.open_http_streams == 0, 5)
        assert server.http_cancelled == 0  # the server hung up, not the client
    assert names(events)[:2] == NORMAL[:2]
    assert len(texts(events)) == drop_after


# ----------------------------------------------------------------------
# HTTP-only switches


def test_http_status_401():
    with LocalMyshellServer(http_status=401) as server:
        with post(server) as response:
            assert response.status_code == 401
            assert error_body(response)["reason"] == "ERROR_REASON_UNAUTHORIZED"


@pytest.mark.parametrize("retry_after, header", [("2", "2"), ("7", "7"), (None, None)])
def test_http_status_429_carries_retry_after(retry_after, header):
    with LocalMyshellServer(http_status=429, http_retry_after=retry_after) as server:
        with post(server) as response:
            assert response.status_code == 429
            assert response.headers.get("Retry-After") == header
            assert error_body(response)["code"] == 429


def test_http_status_429_default_retry_after_is_2():
    with LocalMyshellServer(http_status=429) as server:
        with post(server) as response:
            assert response.headers["Retry-After"] == "2"


def test_http_status_403_is_a_cloudflare_challenge():
    with LocalMyshellServer(http_status=403) as server:
        with post(server) as response:
            assert response.status_code == 403
            assert response.headers["cf-mitigated"] == "challenge"
            assert response.headers["Content-Type"].startswith("text/html")
            assert "<html" in response.text


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_status_5xx_has_a_json_body(status):
    with LocalMyshellServer(http_status=status) as server:
        with post(server) as response:
            assert response.status_code == status
            body = error_body(response)
            assert body["code"] == status and body["reason"].startswith("ERROR_REASON_")


def test_http_status_comes_first_and_can_be_switched_off():
    with LocalMyshellServer(http_status=500, tokens={"t"}) as server:
        with post(server) as response:
            assert response.status_code == 500
        server.http_status = None
        with post(server) as response:
            assert response.status_code == 401
        assert len(server.http_requests) == 2


@pytest.mark.parametrize("bad", [200, 99, 600, "429", True])
def test_status_switches_are_validated(bad):
    with pytest.raises(ValueError):
        LocalMyshellServer(http_status=bad)
    with pytest.raises(ValueError):
        LocalMyshellServer(ws_refuse_status=bad)


def test_refreshed_token_header():
    with LocalMyshellServer(refreshed_token="new.jwt") as server:
        response, _, _ = chat(server)
        assert response.headers["refreshed-auth-token"] == "new.jwt"
        with requests.get(server.base_url + ENERGY, timeout=5, headers={"Authorization": "Bearer x"}) as energy:
            assert energy.headers["refreshed-auth-token"] == "new.jwt"
        server.refreshed_token = None
        assert "refreshed-auth-token" not in chat(server)[0].headers


def test_missing_replied_ends_after_push_finished():
    with LocalMyshellServer(missing_replied=True) as server:
        _, events, decoder = chat(server, "x y")
    assert names(events) == NORMAL[:-1]
    assert texts(events) == reply_chunks("assistant", "x y")
    assert not decoder.pending


def test_truncate_utf8_ends_the_body_inside_a_character():
    with LocalMyshellServer(truncate_utf8=True) as server:
        with post(server, "x y") as response:
            decoder = SSEDecoder()
            events = []
            for chunk in response.iter_content(None):
                events.extend(decoder.feed(chunk))
            assert decoder.pending
            # The cut character decodes to U+FFFD, and the unfinished event is dropped.
            assert decoder.flush() == []
    assert texts(events) == reply_chunks("assistant", "x y")
    assert names(events) == NORMAL[:3]


# ----------------------------------------------------------------------
# The energy endpoint


def test_energy_endpoint_needs_a_bearer():
    with LocalMyshellServer() as server:
        response = requests.get(server.base_url + ENERGY, timeout=5)
        assert response.status_code == 401
        response = requests.get(server.base_url + ENERGY, timeout=5, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 200
        body = response.json()
    assert set(body) == {"energy", "dailyEnergy"}
    assert all(isinstance(v, int) for v in body.values())


def test_energy_endpoint_with_tokens_and_a_budget():
    with LocalMyshellServer(tokens={"good"}, energy=5) as server:
        url = server.base_url + ENERGY
        bad = requests.get(url, timeout=5, headers={"Authorization": "Bearer bad"})
        assert bad.status_code == 401
        good = requests.get(url, timeout=5, headers={"Authorization": "Bearer good"})
        assert good.status_code == 200
        assert good.json()["energy"] == 5
        chat(server, headers={"Authorization": "Bearer good"})
        again = requests.get(url, timeout=5, headers={"Authorization": "Bearer good"})
        assert again.json()["energy"] == 4


# ----------------------------------------------------------------------
# Stream bookkeeping: open streams, client disconnects, shutdown


def test_client_disconnect_is_detected_while_streaming():
    message = " ".join(f"w{i}" for i in range(200))
    with LocalMyshellServer(chunk_delay=0.05) as server:
        response = post(server, message)
        decoder = SSEDecoder()
        for chunk in response.iter_content(None):
            if any(e.event == PREFIX + "TEXT" for e in decoder.feed(chunk)):
                break
        assert server.open_http_streams == 1
        response.close()
        assert server.wait_for(lambda s: s.http_cancelled == 1, 5)
        assert server.wait_for(lambda s: s.open_http_streams == 0, 5)


def test_client_disconnect_during_reply_delay_is_detected():
    with LocalMyshellServer(reply_delay=30) as server:
        response = post(server)
        decoder = SSEDecoder()
        events = []
        for chunk in response.iter_content(None):
            events.extend(decoder.feed(chunk))
            if len(events) == 2:  # CREATED and REPLYING, then the long delay
                break
        response.close()
        assert server.wait_for(lambda s: s.http_cancelled == 1 and s.open_http_streams == 0, 5)


def test_open_streams_are_counted():
    with LocalMyshellServer(reply_delay=30) as server:
        first, second = post(server), post(server)
        try:
            assert server.wait_for(lambda s: s.open_http_streams == 2, 5)
        finally:
            first.close()
            second.close()
        assert server.wait_for(lambda s: s.open_http_streams == 0, 5)
        assert server.http_cancelled == 2


def test_stop_ends_open_streams_promptly():
    server = LocalMyshellServer(reply_delay=30).start()
    try:
        response = post(server)
        assert server.wait_for(lambda s: s.open_http_streams == 1, 5)
        started = time.monotonic()
    finally:
        server.stop()
    assert time.monotonic() - started < 10  # at once, not after the 30 s reply delay
    assert server.open_http_streams == 0
    assert server.http_cancelled == 0  # the server went away, not the client
    with pytest.raises(requests.exceptions.RequestException):
        for _ in response.iter_content(None):
            pass
    response.close()


def test_a_completed_stream_is_not_counted_as_cancelled():
    with LocalMyshellServer() as server:
        chat(server)
        assert server.wait_for(lambda s: s.open_http_streams == 0, 5)
        assert server.http_cancelled == 0


# ----------------------------------------------------------------------
# TLS and the WebSocket upgrade refusal


def test_tls_serves_https_and_wss_on_one_port(tls):
    context, ca_file = tls
    with LocalMyshellServer(ssl_context=context) as server:
        assert server.base_url == f"https://127.0.0.1:{server.port}"
        assert server.ws_url.startswith(f"wss://127.0.0.1:{server.port}/ws/")
        _, events, decoder = chat(server, "secure", verify=ca_file)
        assert "".join(texts(events)) == "assistant: secure"
        assert not decoder.pending
        ws = websocket.create_connection(server.ws_url, timeout=5, sslopt={"ca_certs": ca_file})
        try:
            assert ws.recv().startswith("0{")  # the Engine.IO open packet
        finally:
            ws.close()
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(server.base_url + SEND, json={}, timeout=5)  # untrusted CA


def test_tls_drop_after(tls):
    context, ca_file = tls
    with LocalMyshellServer(ssl_context=context, drop_after=1) as server:
        events = []
        decoder = SSEDecoder()
        with post(server, "a b c", verify=ca_file) as response:
            with pytest.raises(requests.exceptions.RequestException):
                for chunk in response.iter_content(None):
                    events.extend(decoder.feed(chunk))
    assert len(texts(events)) == 1


@pytest.mark.parametrize("status", [403, 404, 426])
def test_ws_refuse_status_answers_plain_http(status):
    with LocalMyshellServer(ws_refuse_status=status) as server:
        with pytest.raises(websocket.WebSocketBadStatusException) as caught:
            websocket.create_connection(server.ws_url, timeout=5)
        assert caught.value.status_code == status
        assert requests.get(server.ws_url.replace("ws://", "http://"), timeout=5).status_code == status
        assert server.connects == 0
        # the HTTP API is untouched
        assert names(chat(server)[1]) == NORMAL
        server.ws_refuse_status = None
        with Myshell(server.base_url, captcha_delay=0, timeout=5, max_retries=0) as client:
            assert "".join(client.generate("gpt-4", [{"role": "user", "content": "ws"}])) == "gpt-4: ws"


def test_websocket_and_http_share_the_port_and_the_energy_budget():
    with LocalMyshellServer(energy=2) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=5) as client:
            assert client.chat("gpt-4", [{"role": "user", "content": "a"}]).text == "gpt-4: a"
        assert chat(server)[1][-1].json()["userEnergyInfo"] == {"energy": 0, "dailyEnergy": 200}
        with post(server) as response:
            assert json.loads(response.text)["reason"] == "ERROR_REASON_USER_NOT_ENOUGH_ENERGY"


# ----------------------------------------------------------------------
# python -m myshell_sync.local


def test_local_server_runs_standalone():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "import runpy; import sys; sys.argv = ['x', '--port', '0']; "
            "runpy.run_module('myshell_sync.local', run_name='__main__')",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line if line else proc.stderr.read()
        base_url = line.split(" local server at ")[1].split()[0]
        with Myshell(base_url, captcha_delay=0, timeout=5) as client:
            text = "".join(client.generate("gpt-4", [{"role": "user", "content": "standalone"}]))
        assert text == "gpt-4: standalone"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.communicate()
