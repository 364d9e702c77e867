"""The wire constants and the reply that the peer sends and every client must reproduce.

A prompt ``N=<n>`` is answered with ``n`` ``text_stream`` frames (chunk ``i``
is ``chunk_text(i)``; the last has ``isFinal: true``) and a
``message_replied`` carrying the whole text.
"""

from __future__ import annotations

import json
from typing import Any, Dict

NAMESPACE = "/chat"
EVENT_PREFIX = "42/chat,"
WS_PATH = "/ws/?EIO=4&transport=websocket"
MODEL = "gpt-4"
AUTH: Dict[str, Any] = {"token": None, "visitorId": "bench-visitor"}
CALL_TIMEOUT = 60.0  # seconds; a call slower than this counts as failed


def chunk_text(i: int) -> str:
    """Chunk ``i`` of every reply: a short token, sometimes non-ASCII."""
    return "naïve " if i % 97 == 96 else f"w{i} "


def expected_text(n: int) -> str:
    return "".join(chunk_text(i) for i in range(n))


def prompt_for(n: int) -> str:
    return f"N={n}"


def text_chat_payload(req_id: str, n: int) -> Dict[str, Any]:
    """The signed ``text_chat`` payload asking for an ``n``-chunk reply."""
    from myshell_sync import generate_signature, models

    text = prompt_for(n)
    return {"reqId": req_id, "botUid": models[MODEL], "sourceFrom": "myshellWebsite",
            "text": text, **generate_signature(text)}


def text_chat_frame(req_id: str, n: int) -> str:
    """That payload as one Socket.IO event packet."""
    return EVENT_PREFIX + json.dumps(["text_chat", text_chat_payload(req_id, n)],
                                     separators=(",", ":"))
