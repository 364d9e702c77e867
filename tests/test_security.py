"""Security: tokens stay secret, TLS is never downgraded, inputs are bounded.

The bounds on frames and SSE events are exercised in test_websocket_transport.py
(a 10 MB frame refused from its header, fragmented messages) and
test_http_transport.py (SSE lines); here only the defaults are pinned.
Proxies and certificates are in test_network.py. RELIABILITY.md maps every
case to its test.
"""

from __future__ import annotations

import logging
import os
import subprocess
import traceback

import pytest
from helpers import CLI, MODEL, USER, http_transport, ws_pool
from scripted_http import RawServer

from myshell_sync import (
    AuthenticationError,
    ConnectionLostError,
    Myshell,
    MyshellConnectionError,
    MyshellTimeoutError,
    ServerError,
    Timeout,
)
from myshell_sync.local import LocalMyshellServer

TOKEN = "tok-SECRET-8c1f4e2a9b7d"
WRONG = "tok-WRONG-55aa10ff3c2e"
REFRESHED = "tok-REFRESHED-0d9e6b21"
PASSWORD = "pw-SECRET-7e3b"
SECRETS = (TOKEN, WRONG, REFRESHED, PASSWORD)


def shown(error: BaseException) -> str:
    """Everything an exception can show: str, repr, the whole formatted chain."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(type(error), error, error.__traceback__)])


def leaks(text: str) -> list:
    return [secret for secret in SECRETS if secret in text]


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_tokens_never_appear_in_logs_reprs_or_errors(transport, caplog, capsys):
    model = MODEL[transport]
    seen = []  # every repr and error message the test can reach
    with caplog.at_level(logging.DEBUG):  # the root logger: every library logs
        with LocalMyshellServer(tokens={TOKEN}, energy=100, refreshed_token=None) as server:

            def client(**options):
                options.setdefault("token", TOKEN)
                options.setdefault("timeout", 5)
                options.setdefault("transport", transport)
                return Myshell(server.base_url, captcha_delay=0, max_retries=0, **options)

            with client() as good:
                with good.stream(model, USER) as stream:
                    "".join(stream)
                reply = good.chat(model, USER)
                seen += [repr(good), str(good), repr(stream), repr(reply), repr(good.timeout), repr(good.energy())]
                if transport != "http":
                    seen += [repr(conn) for conn in ws_pool(good).connections()]
                seen += [repr(good._transport), repr(good._sessions)]
                if transport == "http":
                    seen.append(repr(good._sessions.get().headers))
                # failures that carry server or transport messages
                for switch, value, error in [
                    ("error_event", "message_error", ServerError),
                    ("drop_after", 1, ConnectionLostError),
                    ("reply_delay", 30, MyshellTimeoutError),
                ]:
                    setattr(server, switch, value)
                    with pytest.raises(error) as info:
                        # short limits for the bot that never answers; the others answer at once
                        short = Timeout(connect=10, first_chunk=0.3, idle=0.3) if switch == "reply_delay" else 30
                        list(good.generate(model, USER, timeout=short))
                    setattr(server, switch, {"error_event": None, "drop_after": None, "reply_delay": 0.0}[switch])
                    seen.append(shown(info.value))
            # a refused token, and energy() with it
            with client(token=WRONG) as bad:
                with pytest.raises(AuthenticationError) as info:
                    list(bad.generate(model, USER))
                seen.append(shown(info.value))
                with pytest.raises(AuthenticationError) as info:
                    bad.energy()
                seen += [shown(info.value), repr(bad)]
            # a token the server refreshes (HTTP answers carry the new one)
            server.refreshed_token = REFRESHED
            with client(transport="http") as refreshed:
                "".join(refreshed.generate("assistant", USER))
                assert refreshed.token == REFRESHED
                seen += [repr(refreshed), str(refreshed)]
        # a proxy password, when the proxy cannot be reached
        with Myshell(
            "http://127.0.0.1:9",
            transport=transport,
            max_retries=0,
            timeout=5,
            proxy=f"http://user:{PASSWORD}@127.0.0.1:9",
        ) as proxied:
            with pytest.raises(MyshellConnectionError) as info:
                list(proxied.generate(model, USER))
            seen += [shown(info.value), repr(proxied), repr(proxied.proxy)]
    captured = capsys.readouterr()
    logged = caplog.text + "\n".join(str(record.args) for record in caplog.records)
    assert "> 40/chat" in logged or transport == "http"  # DEBUG was really on
    assert not leaks(logged), "a secret was logged"
    assert not leaks(captured.out + captured.err), "a secret was printed"
    for text in seen:
        assert not leaks(text), text


def test_debug_log_shows_frames_but_never_the_token(caplog):
    token = "secret-token-1234567890"
    with LocalMyshellServer(tokens={token}) as server:
        with caplog.at_level(logging.DEBUG, logger="myshell_sync"):
            with Myshell(server.base_url, token=token, captcha_delay=0) as client:
                assert "".join(client.generate("gpt-4", USER)) == "gpt-4: hi"
                shown = repr(client)
    assert '> 40/chat,{"token":"***"' in caplog.text
    assert '< 42/chat,["text_stream"' in caplog.text
    assert token not in caplog.text
    assert token not in shown


@pytest.mark.skipif(not CLI.exists(), reason="the myshell-sync console script is not installed (pip install -e .)")
@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_cli_output_never_shows_the_token(transport):
    env = {k: v for k, v in os.environ.items() if k != "MYSHELL_TOKEN"}
    outputs = []
    with LocalMyshellServer(tokens={TOKEN}) as server:
        base = ["--base-url", server.base_url, "--captcha-delay", "0", "--timeout", "5", "--transport", transport]
        runs = [
            (["chat", "hello", "--token", TOKEN, *base], {}, 0),
            (["chat", "hello", "--json", *base], {"MYSHELL_TOKEN": TOKEN}, 0),
            (["chat", "hello", "--token", WRONG, *base], {}, None),
            (["chat", "hello", "--json", "--token", WRONG, *base], {}, None),
            (["energy", "--token", TOKEN, "--base-url", server.base_url], {}, 0),
            (["energy", "--json", "--token", WRONG, "--base-url", server.base_url], {}, None),
        ]
        for args, extra_env, code in runs:
            proc = subprocess.run(
                [str(CLI), *args],
                capture_output=True,
                text=True,
                timeout=60,
                env={**env, **extra_env},
                stdin=subprocess.DEVNULL,
            )
            if code is not None:
                assert proc.returncode == code, proc.stderr
            else:
                assert proc.returncode != 0
            outputs.append(proc.stdout + proc.stderr)
    for output in outputs:
        assert not leaks(output), output


# ---------------------------------------------------------------------------
# TLS


def test_tls_verification_is_on_by_default_on_both_transports():
    with Myshell("https://example.invalid", transport="auto") as client:
        assert client.verify is True
        assert client.ws_url.startswith("wss://example.invalid/ws/")  # never downgraded to ws://
        websocket = client._transport.websocket
        assert websocket.url.startswith("wss://")
        assert "sslopt" not in websocket.pool._open_connection.keywords["options"]  # verified by default
        http = http_transport(client)
        assert http.url.startswith("https://")
        assert client._sessions.get().verify is True


@pytest.mark.parametrize("transport", ["websocket", "http", "auto"])
def test_https_url_on_a_plaintext_server_fails_and_sends_nothing_in_clear(transport):
    with LocalMyshellServer(tokens={TOKEN}) as server:
        url = server.base_url.replace("http://", "https://")
        with Myshell(
            url,
            transport=transport,
            token=TOKEN,
            captcha_delay=0,
            max_retries=0,
            timeout=5,
            http_bot_ids={"gpt-4": "4738"},
        ) as client:
            with pytest.raises(MyshellConnectionError) as info:
                list(client.generate("gpt-4" if transport != "http" else "assistant", USER))
        assert server.auths == [] and server.requests == [] and server.http_requests == []
    assert "TLS" in str(info.value) or "SSL" in str(info.value)


@pytest.mark.parametrize("transport", ["websocket", "http"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_never_leads_from_tls_to_plaintext(tls, transport, status):
    context, ca_file = tls
    with LocalMyshellServer(tokens={TOKEN}) as plain:

        def redirect(conn):
            while True:  # every request on the connection, until the client closes it
                _, path, _, _ = conn.read_request(timeout=None)
                target = plain.base_url + path
                if transport == "websocket":
                    target = target.replace("http://", "ws://")
                conn.send(f"HTTP/1.1 {status} Moved\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n".encode())

        with RawServer(redirect, ssl_context=context) as secure:
            with Myshell(
                secure.base_url,
                transport=transport,
                token=TOKEN,
                verify=ca_file,
                captcha_delay=0,
                max_retries=0,
                timeout=5,
            ) as client:
                with pytest.raises(MyshellConnectionError) as info:
                    list(client.generate(MODEL[transport], USER))
                if transport == "http":
                    with pytest.raises(MyshellConnectionError):
                        client.energy()  # the energy GET does not follow redirects either
            assert not secure.errors
        # nothing reached the plaintext server: no upgrade, no token, no prompt
        assert plain.auths == [] and plain.requests == [] and plain.http_requests == []
    assert "redirect" in str(info.value) and str(status) in str(info.value)
    assert info.value.status_code == status


# ---------------------------------------------------------------------------
# Bounds


def test_max_event_size_defaults_to_16_mb_and_is_checked():
    with Myshell("http://127.0.0.1:9") as client:
        assert client.max_event_size == 16 * 1024 * 1024
    for bad in (0, -1, 1.5, "big"):
        with pytest.raises(ValueError, match="max_event_size"):
            Myshell("http://127.0.0.1:9", max_event_size=bad)
