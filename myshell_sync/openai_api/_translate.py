"""OpenAI's chat completions request, read into a call of the public client.

Pure functions, no I/O: checking the request (everything a MyShell transport
cannot do is refused here, before anything is sent), the message mapping and
the token estimate. The ``stop`` scanner is ``myshell_sync._stop``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._exceptions import InvalidRequestError

__all__ = [
    "CompletionRequest",
    "estimate_tokens",
    "parse_request",
]

logger = logging.getLogger("myshell_sync")

#: The generation settings the public client takes (sent where the transport can).
SETTINGS = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty")
#: OpenAI parameters that would change what the reply is, and that no MyShell transport can do.
REFUSED = {
    "tools": "tool calls",
    "tool_choice": "tool calls",
    "functions": "function calls",
    "function_call": "function calls",
    "parallel_tool_calls": "tool calls",
    "audio": "audio output",
    "prediction": "predicted outputs",
}
#: Roles MyShell's history can hold; "developer" is OpenAI's newer name for "system".
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP = 4

_logged: set[str] = set()
_logged_lock = threading.Lock()


@dataclasses.dataclass
class CompletionRequest:
    """What the client is asked to do, checked."""

    model: str
    messages: list[dict[str, str]]
    stream: bool
    settings: dict[str, Any]
    stop: tuple[str, ...]
    include_usage: bool
    timeout: Any = None


def _param_error(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _log_ignored_once(name: str, why: str) -> None:
    with _logged_lock:
        if name in _logged:
            return
        _logged.add(name)
    logger.debug("openai_api: %s is accepted and ignored: %s", name, why)


def _text_content(index: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        raise _param_error(f"messages[{index}].content", f"messages[{index}] has no content: give its text")
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts = []
        for part_index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise _param_error(
                    f"messages[{index}].content[{part_index}]",
                    f"messages[{index}].content[{part_index}] is a {kind or type(part).__name__!s} part: "
                    "MyShell's chat APIs take text only; send the text parts alone",
                )
            texts.append(part["text"])
        return "".join(texts)
    raise _param_error(
        f"messages[{index}].content",
        f"messages[{index}].content must be a string or a list of text parts, not {type(content).__name__}",
    )


def _messages(messages: Any) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise _param_error("messages", "messages must be a non-empty list of {'role', 'content'} objects")
    mapped = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _param_error(f"messages[{index}]", f"messages[{index}] must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            hint = (
                "tool results need tool calls, which MyShell's chat APIs do not make"
                if role in ("tool", "function")
                else f"use one of {', '.join(ROLES)}"
            )
            raise _param_error(f"messages[{index}].role", f"messages[{index}].role is {role!r}: {hint}")
        if message.get("tool_calls") or message.get("function_call"):
            raise _param_error(
                f"messages[{index}]", f"messages[{index}] carries tool calls: MyShell's chat APIs make none"
            )
        mapped.append({"role": ROLES[role], "content": _text_content(index, message.get("content"))})
    if mapped[-1]["role"] != "user":
        raise _param_error(
            "messages",
            f"messages must end with a user message (the last is {mapped[-1]['role']!r}): MyShell answers the user",
        )
    return mapped


def _number(name: str, value: Any, *, integer: bool = False, low: float, high: float) -> Any:
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (
        isinstance(value, bool)
        or not ok
        or not low <= value <= high
        or (isinstance(value, float) and math.isnan(value))
    ):
        kind = "an integer" if integer else "a number"
        raise _param_error(name, f"{name} must be {kind} from {low:g} to {high:g}, not {value!r}")
    return value


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, Sequence) or not all(isinstance(item, str) for item in stops):
        raise _param_error("stop", "stop must be a string or a list of strings")
    if len(stops) > MAX_STOP:
        raise _param_error("stop", f"stop takes at most {MAX_STOP} strings, not {len(stops)}")
    if any(item == "" for item in stops):
        raise _param_error("stop", "stop strings must not be empty")
    return tuple(stops)


def parse_request(
    *,
    model: Any,
    messages: Any,
    stream: Any = False,
    n: Any = None,
    stop: Any = None,
    stream_options: Any = None,
    supports_settings: bool,
    settings: Mapping[str, Any],
    ignored: Mapping[str, Any],
    timeout: Any = None,
) -> CompletionRequest:
    """Check one ``chat.completions.create`` call; raise ``InvalidRequestError``
    (a ``BadRequestError``) naming the first bad parameter."""
    if not isinstance(model, str) or not model:
        raise _param_error("model", "model is required: a model name (see models.list())")
    if not isinstance(stream, bool):
        raise _param_error("stream", f"stream must be true or false, not {stream!r}")
    for name, what in REFUSED.items():
        if ignored.get(name):
            raise _param_error(name, f"{name}: MyShell's chat APIs make no {what}; leave {name} out")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise _param_error("n", f"n must be a positive integer, not {n!r}")
    if n is not None and n > 1:
        raise _param_error("n", "n > 1 is not supported: MyShell answers one choice per request; make n calls")
    include_usage = False
    if stream_options is not None:
        if not isinstance(stream_options, Mapping):
            raise _param_error("stream_options", "stream_options must be an object")
        include_usage = bool(stream_options.get("include_usage"))
    checked = {
        "temperature": _number("temperature", settings.get("temperature"), low=0, high=2),
        "top_p": _number("top_p", settings.get("top_p"), low=0, high=1),
        "max_tokens": _number("max_tokens", settings.get("max_tokens"), integer=True, low=1, high=2**31 - 1),
        "presence_penalty": _number("presence_penalty", settings.get("presence_penalty"), low=-2, high=2),
        "frequency_penalty": _number("frequency_penalty", settings.get("frequency_penalty"), low=-2, high=2),
    }
    sent = {name: value for name, value in checked.items() if value is not None}
    if sent and not supports_settings:
        for name in sent:
            _log_ignored_once(name, "this client's transport sends no generation settings")
        sent = {}
    for name, value in ignored.items():
        if value is not None and name not in REFUSED:
            _log_ignored_once(name, "no MyShell transport has it")
    return CompletionRequest(
        model=model,
        messages=_messages(messages),
        stream=stream,
        settings=sent,
        stop=_stop(stop),
        include_usage=include_usage,
        timeout=timeout,
    )


def estimate_tokens(text: str) -> int:
    """An estimate: one token per 4 characters, rounded up (OpenAI's rule of
    thumb for English). MyShell reports no token counts."""
    return (len(text) + 3) // 4


def estimate_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """``estimate_tokens`` of each message's content, plus 4 per message for
    its role and framing (as OpenAI's own counting guide adds)."""
    return sum(estimate_tokens(message["content"]) + 4 for message in messages)
