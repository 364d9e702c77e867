"""``transport="auto"``: the WebSocket while it works, HTTP once the upgrade is refused."""

from __future__ import annotations

import logging

import pytest
from helpers import make_client, user

from myshell_sync import AuthenticationError, MyshellError
from myshell_sync.local import LocalMyshellServer


def test_auto_falls_back_to_http_when_the_upgrade_is_refused(local_server, caplog):
    local_server.ws_refuse_status = 403
    with caplog.at_level(logging.WARNING, logger="myshell_sync"):
        with make_client(local_server, "auto", http_bot_ids={"gpt-4": "4738"}) as client:
            assert "".join(client.generate("gpt-4", user("one"))) == "assistant: one"
            assert "".join(client.generate("gpt-4", user("two"))) == "assistant: two"
    assert local_server.connects == 0 and len(local_server.http_requests) == 2
    assert len([r for r in caplog.records if "uses HTTP" in r.getMessage()]) == 1


def test_auto_uses_the_websocket_when_it_works(local_server):
    with make_client(local_server, "auto", http_bot_ids={"gpt-4": "4738"}) as client:
        assert "".join(client.generate("gpt-4", user("ws"))) == "gpt-4: ws"
    assert local_server.connects == 1 and local_server.http_requests == []


def test_websocket_only_client_does_not_fall_back(local_server):
    local_server.ws_refuse_status = 426
    with make_client(local_server, "websocket", max_retries=0) as client:
        with pytest.raises(MyshellError) as info:
            list(client.generate("gpt-4", user("x")))
    assert info.value.status_code == 426
    assert local_server.http_requests == []


def test_auto_never_falls_back_when_the_namespace_is_refused():
    # A refused token (44/chat,) would be refused over HTTP too: auto keeps
    # the WebSocket, raises its error and sends nothing over HTTP.
    with LocalMyshellServer(tokens={"good"}) as server:
        with make_client(server, "auto", token="bad", http_bot_ids={"gpt-4": "4738"}) as client:
            with pytest.raises(AuthenticationError, match="refused the /chat namespace"):
                list(client.generate("gpt-4", user("x")))
            assert not client._transport.fell_back
        assert server.refused == 1 and server.http_requests == []
