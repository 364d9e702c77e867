"""The wire constants and the reply that the peer sends and every client must reproduce.

A prompt ``N=<n>`` is answered with ``n`` chunks (chunk ``i`` is
``chunk_text(i)``), on every route of the peer:

* WebSocket: ``n`` ``text_stream`` frames (the last has ``isFinal: true``)
  and a ``message_replied`` carrying the whole text;
* HTTP (``POST /v1/bot/chat/send_message``): ``n`` ``…_TEXT`` server-sent
  events, then ``…_TEXT_STREAM_PUSH_FINISHED``,
  ``…_USER_SENT_MESSAGE_REPLIED`` (the whole text), ``…_USER_CONSUMED_ENERGY``
  and the end of the body (chunked, keep-alive);
* the key-based API (``POST /public/v1/widget/run``): the whole text at once,
  ``{"success": true, "result": "<JSON string>"}``.
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACE = "/chat"
EVENT_PREFIX = "42/chat,"
WS_PATH = "/ws/?EIO=4&transport=websocket"
MODEL = "gpt-4"
AUTH: dict[str, Any] = {"token": None, "visitorId": "bench-visitor"}
CALL_TIMEOUT = 60.0  # seconds; a call slower than this counts as failed

# -- HTTP: the web app's SSE chat route ---------------------------------------
CHAT_PATH = "/v1/bot/chat/send_message"
HTTP_MODEL = "4738"  # the numeric bot id the HTTP route takes
SSE_PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"
SSE_TEXT = SSE_PREFIX + "TEXT"
SSE_FINISHED = SSE_PREFIX + "TEXT_STREAM_PUSH_FINISHED"
SSE_REPLIED = SSE_PREFIX + "USER_SENT_MESSAGE_REPLIED"
SSE_ENERGY = SSE_PREFIX + "USER_CONSUMED_ENERGY"
#: What a user copies from the web app (and what myshell_sync sends, bar the timestamp).
HTTP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "myshell-service-name": "organics-api",
    "visitor-id": "7b0d3a9e-6b0e-4b8f-9b59-3d7c1f0e2a11",
    "platform": "web",
    "version": "1.0.0",
    "myshell-client-version": "v1.6.4",
    "Accept-Language": "en",
}

# -- the key-based API -----------------------------------------------------------
OPENAPI_PATH = "/public/v1/widget/run"
OPENAPI_MODEL = "gpt-4o-mini"
OPENAPI_WIDGET = "1744218088699597788"
API_KEY = "bench-api-key"
OPENAPI_HEADERS = {"Content-Type": "application/json", "x-myshell-openapi-key": API_KEY}


def chunk_text(i: int) -> str:
    """Chunk ``i`` of every reply: a short token, sometimes non-ASCII."""
    return "naïve " if i % 97 == 96 else f"w{i} "


def expected_text(n: int) -> str:
    return "".join(chunk_text(i) for i in range(n))


def prompt_for(n: int) -> str:
    return f"N={n}"


def messages_for(n: int) -> list:
    return [{"role": "user", "content": prompt_for(n)}]


def text_chat_payload(req_id: str, n: int) -> dict[str, Any]:
    """The signed ``text_chat`` payload asking for an ``n``-chunk reply."""
    from myshell_sync import generate_signature, models

    text = prompt_for(n)
    return {
        "reqId": req_id,
        "botUid": models[MODEL],
        "sourceFrom": "myshellWebsite",
        "text": text,
        **generate_signature(text),
    }


def text_chat_frame(req_id: str, n: int) -> str:
    """That payload as one Socket.IO event packet."""
    return EVENT_PREFIX + json.dumps(["text_chat", text_chat_payload(req_id, n)], separators=(",", ":"))


def chat_body(n: int) -> dict[str, Any]:
    """The HTTP route's JSON body asking for an ``n``-chunk reply."""
    return {"botId": HTTP_MODEL, "conversation_scenario": 4, "message": prompt_for(n), "messageType": 1}


def openapi_body(n: int) -> dict[str, Any]:
    """The key-based API's JSON body (``input`` is a JSON document in a string)."""
    return {"widget_id": OPENAPI_WIDGET, "input": json.dumps({"user_prompt": prompt_for(n), "memory": []})}
