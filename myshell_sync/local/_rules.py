"""What the local server's bots answer, and how a fault plan cuts a reply.

Pure rules, no I/O, shared by the Socket.IO, the HTTP and the key-based side.

Reply rule (deterministic, so tests can predict every frame): the reply to
``text`` from the bot named ``name`` is ``f"{name}: {text}"``, streamed one
chunk per frame or event, where the chunks are
``re.findall(r"\\S+\\s*|\\s+", reply)``: words that keep their trailing
whitespace, so ``"".join(chunks) == reply``. ``reply_chunks()`` computes them.

The key-based API (PROTOCOL.md section 8) answers a widget run with
``openapi_reply(model, user_prompt, len(memory), bool(system_prompt))``:
``f"{model} ({N} earlier turns): {user_prompt}"``, with ``", system"`` after
``turns`` when the input has a non-empty ``system_prompt``. It arrives whole.
``widget_run_check()`` validates the request body.

A ``Plan`` is the fault switches as one request found them;
``Plan.cut_at()`` says where its reply stops early.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._signing import generate_header_timestamp

__all__ = [
    "DEFAULT_BOTS",
    "DEFAULT_HTTP_BOTS",
    "DEFAULT_WIDGETS",
    "DROP",
    "ERROR",
    "ERROR_EVENTS",
    "ERROR_REASONS",
    "INPUT_FIELDS",
    "LOCAL_API_KEY",
    "MALFORMED_KINDS",
    "Plan",
    "REQUIRED_FIELDS",
    "SOURCE_FROM",
    "STATUS_ERRORS",
    "openapi_reply",
    "reply_chunks",
    "send_message_problem",
    "status_message",
    "text_chat_problem",
    "valid_timestamp",
    "widget_run_check",
]

# The WS bot uids known from public clients (PROTOCOL.md section 5).
DEFAULT_BOTS: Mapping[str, str] = {
    "1e3be7fe89e94a809408b1154a2ee3e1": "samantha",
    "8077335db7cd47e29f7de486612cc7fd": "gpt-3.5-turbo",
    "01c8de4fbfc548df903712b0922a4e01": "gpt-4",
}
# The HTTP API's numeric bot ids -> names. Both ids were seen in public
# clients (PROTOCOL.md section 5); 4738 is a general assistant, what bot 1 runs
# is unknown. The names match the client's ``http_models``.
DEFAULT_HTTP_BOTS: Mapping[str, str] = {
    "4738": "assistant",
    "1": "bot-1",
}
# The key-based API's widget ids -> model names (PROTOCOL.md section 8.1).
DEFAULT_WIDGETS: Mapping[str, str] = {
    "1744214024104448000": "gpt-3.5-turbo",
    "1744214024104448199": "gpt-4o",
    "1744218088699597788": "gpt-4o-mini",
    "1744214047475109888": "gpt-4-turbo",
    "1744218088699596812": "claude-3.5-sonnet",
}
# The key the local server accepts unless given ``api_keys``.
LOCAL_API_KEY = "local-api-key"
# The fields a widget run's ``input`` may hold (PROTOCOL.md 8.1, no functions).
_SETTINGS: tuple[str, ...] = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
INPUT_FIELDS: tuple[str, ...] = ("system_prompt", "user_prompt", "memory", "max_tokens") + _SETTINGS
# What ``openapi_malformed`` may select: a 200 body that is not the documented shape.
MALFORMED_KINDS: tuple[str, ...] = ("no-result", "not-json", "result-not-json", "result-not-string")
# Events that ``error_event`` may name, each with the message it carries.
ERROR_EVENTS: Mapping[str, str] = {
    "exception": "internal server error (simulated)",
    "message_error": "message error (simulated)",
    "need_verify_captcha": "need verify captcha",
    "no_enough_energy": "no enough energy",
    "chat_login_popup": "login required (simulated)",
    "auth_fail": "auth fail (simulated)",
}
# The HTTP in-stream errorReason for each ``error_event`` (WS event names).
ERROR_REASONS: Mapping[str, str] = {
    "exception": "ERROR_REASON_INTERNAL_SERVER_ERROR",
    "message_error": "ERROR_REASON_UNSPECIFIED",
    "need_verify_captcha": "ERROR_REASON_CHAT_NEED_VERIFY_CAPTCHA",
    "no_enough_energy": "ERROR_REASON_USER_NOT_ENOUGH_ENERGY",
    "chat_login_popup": "ERROR_REASON_UNAUTHORIZED",
    "auth_fail": "ERROR_REASON_UNAUTHORIZED",
}
# reason and message of the JSON body ``http_status`` answers with.
STATUS_ERRORS: Mapping[int, tuple[str, str]] = {
    401: ("ERROR_REASON_UNAUTHORIZED", "login required (simulated)"),
    429: ("ERROR_REASON_TOO_MANY_REQUESTS", "too many requests (simulated)"),
    500: ("ERROR_REASON_INTERNAL_SERVER_ERROR", "internal server error (simulated)"),
    502: ("ERROR_REASON_INTERNAL_SERVER_ERROR", "bad gateway (simulated)"),
}
# Fields every text_chat must carry, all strings (PROTOCOL.md 1.3).
REQUIRED_FIELDS: tuple[str, ...] = (
    "reqId",
    "botUid",
    "sourceFrom",
    "text",
    "signature",
    "timestamp",
    "version",
)
SOURCE_FROM = "myshellWebsite"
# What ``Plan.cut_at`` answers: abort the connection, or send the error.
DROP = "drop"
ERROR = "error"
_CHUNK_RE = re.compile(r"\S+\s*|\s+")


def reply_chunks(bot_name: str, prompt: str) -> list[str]:
    """Return the chunks the server streams for ``prompt`` sent to ``bot_name``.

    ``"".join(reply_chunks(name, prompt)) == f"{name}: {prompt}"`` always holds.
    """
    return _CHUNK_RE.findall(f"{bot_name}: {prompt}")


def openapi_reply(model: str, user_prompt: str, memory_turns: int, has_system: bool) -> str:
    """Return the key-based API's reply to ``user_prompt`` sent to ``model``."""
    system = ", system" if has_system else ""
    return f"{model} ({memory_turns} earlier turns{system}): {user_prompt}"


def status_message(status: int) -> str:
    """The message an error body forced by a status switch carries."""
    return STATUS_ERRORS.get(status, ("", f"HTTP {status} (simulated)"))[1]


def _reached(threshold: int, sent: int, last: bool) -> bool:
    """Whether an "after N chunks" threshold is met once ``sent`` chunks are out."""
    return sent == threshold or (last and threshold > sent)


@dataclass(frozen=True)
class Plan:
    """The fault switches as they were when one request arrived."""

    error_event: str | None
    error_after: int
    chunk_delay: float
    reply_delay: float
    drop_after: int | None
    report_energy: bool
    missing_replied: bool  # HTTP only
    truncate_utf8: bool  # HTTP only

    def cut_at(self, sent: int, last: bool = False) -> str | None:
        """``DROP``, ``ERROR`` or None: how the reply ends once ``sent`` chunks are out.

        ``last`` means every chunk is out, so any larger threshold is reached.
        """
        if self.drop_after is not None and _reached(self.drop_after, sent, last):
            return DROP
        if self.error_event is not None and _reached(self.error_after, sent, last):
            return ERROR
        return None


def text_chat_problem(payload: Any) -> str | None:
    """Return why a text_chat payload is malformed, or None if it is fine."""
    if not isinstance(payload, dict):
        return "text_chat payload must be an object"
    for field in REQUIRED_FIELDS:
        if not isinstance(payload.get(field), str):
            return f"text_chat field {field!r} is missing or not a string"
    if not payload["reqId"]:
        return "text_chat field 'reqId' is empty"
    if payload["sourceFrom"] != SOURCE_FROM:
        return f"text_chat field 'sourceFrom' must be {SOURCE_FROM!r}"
    return None


def send_message_problem(body: Any) -> str | None:
    """Return why a send_message body is malformed, or None if it is fine."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for field in ("botId", "message"):
        if not isinstance(body.get(field), str):
            return f"field {field!r} is missing or not a string"
    kind = body.get("messageType")
    if kind != 1 or isinstance(kind, bool):
        return "field 'messageType' must be 1 (text)"
    scenario = body.get("conversation_scenario")
    if scenario is not None and (not isinstance(scenario, int) or isinstance(scenario, bool)):
        return "field 'conversation_scenario' must be an integer"
    return None


def valid_timestamp(value: str) -> bool:
    """Whether a ``timestamp`` header ends with its own check digit, variant B."""
    return value.isascii() and value.isdigit() and len(value) <= 20 and generate_header_timestamp(int(value)) == value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _decoded_input(body: Any) -> tuple[Any, str | None]:
    """``(input decoded, None)``, or ``(None, why the body is not a widget run)``."""
    if not isinstance(body, dict):
        return None, "the body must be a JSON object"
    for field in body:
        if field not in ("widget_id", "input"):
            return None, f"field {field!r} is not supported"
    if not isinstance(body.get("input"), str):
        return None, "field 'input' is missing or not a string"
    try:
        return json.loads(body["input"]), None
    except (ValueError, RecursionError):
        return None, "field 'input' is not JSON text"


def _input_problem(data: Any) -> str | None:
    """Why a decoded ``input`` is not a chat-model input, or None."""
    if not isinstance(data, dict):
        return "field 'input' must hold a JSON object"
    for field in data:
        if field not in INPUT_FIELDS:
            return f"input field {field!r} is not supported"
    if not isinstance(data.get("user_prompt"), str):
        return "input field 'user_prompt' is missing or not a string"
    if not isinstance(data.get("system_prompt", ""), str):
        return "input field 'system_prompt' must be a string"
    memory = data.get("memory", [])
    if not isinstance(memory, list):
        return "input field 'memory' must be a list"
    for index, turn in enumerate(memory):
        if (
            not isinstance(turn, dict)
            or set(turn) != {"role", "content"}
            or turn["role"] not in ("user", "assistant")
            or not isinstance(turn["content"], str)
        ):
            return f'input field \'memory\' item {index} must be {{"role": "user" or "assistant", "content": <string>}}'
    for field in _SETTINGS:
        if field in data and not _is_number(data[field]):
            return f"input field {field!r} must be a number"
    tokens = data.get("max_tokens")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool)):
        return "input field 'max_tokens' must be an integer or null"
    return None


def widget_run_check(body: Any, widgets: Mapping[str, str]) -> tuple[Any, str | None]:
    """Check a widget run's body: ``(input, problem)``.

    ``input`` is the decoded ``input`` field whenever it is JSON text (even if
    something else is wrong), else None; ``problem`` is None for a valid body,
    else the 400 message naming the faulty field.
    """
    data, problem = _decoded_input(body)
    if problem is None:
        widget = body.get("widget_id")
        if not isinstance(widget, str):
            problem = "field 'widget_id' is missing or not a string"
        elif widget not in widgets:
            problem = f"unknown widget_id {widget!r}; known: {', '.join(sorted(widgets))}"
        else:
            problem = _input_problem(data)
    return data, problem
