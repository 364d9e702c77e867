"""Conversations: the history, on every transport, against the local server."""

from __future__ import annotations

import json

import pytest

from myshell_sync import Conversation, ConversationBusyError, Myshell, ServerError, format_prompt
from myshell_sync.local import LOCAL_API_KEY, LocalMyshellServer, openapi_reply, reply_chunks

TRANSPORTS = [("websocket", "gpt-4"), ("http", "assistant"), ("openapi", "gpt-4o")]


def make(server, transport):
    return Myshell(server.base_url, transport=transport, api_key=LOCAL_API_KEY, captcha_delay=0, timeout=10)


def sent(server, transport):
    """What the server received for each turn, in the transport's own form."""
    if transport == "websocket":
        return [r["text"] for r in server.requests]
    if transport == "http":
        return [r["json"]["message"] for r in server.http_requests]
    return [r["input"] for r in server.openapi_requests]


@pytest.mark.parametrize("transport, model", TRANSPORTS)
def test_three_turns_the_third_request_carries_two_earlier_turns(transport, model):
    with LocalMyshellServer() as server:
        with make(server, transport) as client:
            conv = client.conversation(model, system="be brief")
            replies = ["".join(conv.send(text)) for text in ("one", "two", "three")]
            history = conv.history
        assert [m["role"] for m in history] == ["user", "assistant"] * 3
        assert [m["content"] for m in history[::2]] == ["one", "two", "three"]
        assert [m["content"] for m in history[1::2]] == replies
        third = sent(server, transport)[2]
        earlier = history[:4]
        if transport == "openapi":
            assert third == {"system_prompt": "be brief", "user_prompt": "three", "memory": earlier}
            assert replies[2] == openapi_reply("gpt-4o", "three", 4, True)
        else:
            # The flattened prompt, exactly what generate() sends for these messages.
            messages = [{"role": "system", "content": "be brief"}] + earlier + [{"role": "user", "content": "three"}]
            assert third == format_prompt(messages)
            assert replies[2] == "".join(reply_chunks(model, third))


@pytest.mark.parametrize("transport, model", TRANSPORTS)
def test_a_failed_turn_leaves_the_history_unchanged(transport, model):
    with LocalMyshellServer() as server:
        with make(server, transport) as client:
            conv = client.conversation(model)
            "".join(conv.send("kept"))
            before = conv.history
            server.error_event = "message_error"
            server.http_status = 500
            server.openapi_status = 500
            with pytest.raises(ServerError):
                "".join(conv.send("lost"))
            assert conv.history == before
            server.error_event = None
            server.http_status = None
            server.openapi_status = None
            "".join(conv.send("next"))
            assert [m["content"] for m in conv.history[::2]] == ["kept", "next"]


def test_an_abandoned_turn_leaves_the_history_unchanged():
    with LocalMyshellServer(chunk_delay=0.05) as server:
        with make(server, "websocket") as client:
            conv = client.conversation("gpt-4")
            with conv.send("a b c d e f g h") as stream:
                next(stream)
            assert conv.history == []
            "".join(conv.send("again"))
            assert len(conv.history) == 2


def test_two_sends_at_once_raise_instead_of_interleaving():
    with LocalMyshellServer() as server:
        with make(server, "websocket") as client:
            conv = client.conversation("gpt-4")
            stream = conv.send("first")
            with pytest.raises(ConversationBusyError, match="still waiting for a reply"):
                conv.send("second")
            assert "".join(stream)
            assert "".join(conv.send("second"))  # free again once the reply ended
            assert len(conv.history) == 4


def test_a_saved_history_round_trips_through_json_and_resumes():
    with LocalMyshellServer() as server:
        with make(server, "openapi") as client:
            conv = client.conversation("gpt-4o")
            "".join(conv.send("remember me"))
            saved = json.dumps(conv.history)
            resumed = Conversation(client, "gpt-4o", history=json.loads(saved))
            assert resumed.history == conv.history
            assert "".join(resumed.send("still there?")) == openapi_reply("gpt-4o", "still there?", 2, False)
            resumed.reset()
            assert resumed.history == []


def test_history_holds_user_and_assistant_turns_only():
    with Myshell("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="system="):
            Conversation(client, "gpt-4", history=[{"role": "system", "content": "x"}])
        conv = Conversation(client, "gpt-4", history=[{"role": "user", "content": "a"}])
        conv.history.append({"role": "user", "content": "not kept"})  # a copy
        assert conv.history == [{"role": "user", "content": "a"}]
